// Staff page of one store: the pick list, live from the store's event stream.
import {
  $, ApiError, api, apiKey, coalesced, el, readEvents, sleep, timeEl, withApiKey,
} from "./common.js";

const STATES = { confirmed: "To pick", ready: "Ready for collection" };
const STALE_MS = 45000; // no bytes at all (not even a keepalive) for this long: reconnect
const POLL_MS = 15000; // without a stream, refresh this often
const enc = encodeURIComponent;

let store = null; // the location: {location_id, name, …}
const skus = new Set(); // stock panel rows: items of every pickup shown since the page opened
const busy = new Set(); // reservation ids with a transition in flight
let known = null; // ids on the pick list, to announce new arrivals

const say = (text) => { $("#status").textContent = text; };
const showError = (text) => { $("#error").textContent = text || ""; };
const codeOf = (r) => r.hold_code || r.reservation_id;
const linesHere = (r) => r.lines.filter((l) => l.location_id === store.location_id);
const linesText = (r) => linesHere(r).map((l) => `${l.qty} × ${l.sku}`).join(", ");

withApiKey(async () => {
  try {
    const { locations } = await api("/v1/locations");
    const wanted = new URLSearchParams(location.search).get("location");
    store = locations.find((l) => l.location_id === wanted)
      || (!wanted && locations.length === 1 ? locations[0] : null);
    if (!store) {
      chooseLocation(locations, wanted);
      return;
    }
    document.title = `Pickups · ${store.name} · stocksync`;
    $("#title").textContent = `Pickups · ${store.name}`;
    $("#board").hidden = false;
    setInterval(refresh, 60000); // deadlines ("in 5 minutes") age; also a safety net
    live();
  } catch (err) {
    showError(err.detail || String(err));
  }
});

function chooseLocation(locations, wanted) {
  if (!locations.length) {
    showError("This API key sees no locations.");
    return;
  }
  if (wanted) showError(`This API key sees no location "${wanted}". Choose a store.`);
  const select = $("#location");
  const sorted = [...locations].sort((a, b) => a.name.localeCompare(b.name));
  select.replaceChildren(...sorted.map((l) => el("option", { value: l.location_id, text: l.name })));
  const form = $("#location-form");
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.search = `?location=${enc(select.value)}`;
  });
  select.focus();
}

function setLive(state, text) {
  $("#live").hidden = false;
  $("#live").dataset.state = state;
  $("#live-text").textContent = text;
}

/** Keeps the event stream open (reconnecting with backoff); any event refreshes the list. */
async function live() {
  let lastId = null;
  let delay = 1000;
  let notice = null; // "Reconnecting…" shows only if a reconnect takes a while
  setLive("connecting", "Connecting…");
  while (apiKey()) {
    const abort = new AbortController();
    let seen = Date.now();
    const watchdog = setInterval(() => Date.now() - seen > STALE_MS && abort.abort(), 5000);
    try {
      await readEvents(`/v1/locations/${enc(store.location_id)}/events`, {
        signal: abort.signal,
        lastEventId: lastId,
        onOpen: () => {
          clearTimeout(notice);
          setLive("live", "Live");
          delay = 1000;
          refresh(); // whatever happened while we were not listening
        },
        onActivity: () => { seen = Date.now(); },
        onEvent: (event) => {
          lastId = event.id ?? lastId;
          refresh();
        },
      });
    } catch (err) {
      // A refusal (not a busy server: 429) will not change by retrying: poll instead.
      if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) {
        clearTimeout(notice);
        if (err.status === 401) return;
        setLive("off", `Not live (${err.detail}): refreshing every 15 s`);
        setInterval(refresh, POLL_MS);
        return;
      }
    } finally {
      clearInterval(watchdog);
    }
    clearTimeout(notice);
    notice = setTimeout(() => setLive("off", "Reconnecting…"), 3000);
    await sleep(delay);
    delay = Math.min(delay * 2, 30000);
  }
}

const refresh = coalesced(load); // events during a refresh: one more round, not one each

async function load() {
  const here = enc(store.location_id);
  const [picks, risk] = await Promise.allSettled([
    api(`/v1/locations/${here}/pickups?state=confirmed&state=ready`),
    api(`/v1/reservations?at_risk=true&location_id=${here}`),
  ]);
  const at = new Date().toLocaleTimeString();
  if (picks.status === "fulfilled") {
    const list = picks.value.pickups;
    renderPicks(list);
    const n = list.length;
    $("#picks-summary").textContent = n
      ? `${n} pickup${n === 1 ? "" : "s"} waiting · updated ${at}`
      : `No pickups waiting · updated ${at}`;
  } else {
    $("#picks-summary").textContent = `Could not refresh at ${at}: ${picks.reason.detail}`;
  }
  if (risk.status === "fulfilled") renderRisk(risk.value.reservations);
  await loadStock();
}

function renderPicks(pickups) {
  const list = $("#picks");
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const focus = focused && { id: focused.closest("[data-id]").dataset.id, action: focused.dataset.action };
  const old = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const deadline = (r) => (r.expires_at ? Date.parse(r.expires_at) : Infinity);
  const items = [...pickups].sort((a, b) => deadline(a) - deadline(b)).map((r) => {
    const sig = JSON.stringify([r.state, r.expires_at, r.at_risk, r.lines, r.customer_ref]);
    const prev = old.get(r.reservation_id);
    return prev && prev.dataset.sig === sig ? prev : pickupItem(r, sig); // unchanged: keep node
  });
  items.forEach((item, i) => {
    if (list.children[i] !== item) list.insertBefore(item, list.children[i] || null);
  });
  while (list.children.length > items.length) list.lastElementChild.remove();
  if (focus && !list.contains(document.activeElement)) {
    const li = items.find((item) => item.dataset.id === focus.id);
    const target = li && (li.querySelector(`[data-action="${focus.action}"]`) || li.querySelector("button"));
    (target || $("#picks-h")).focus();
  }
  const fresh = pickups.filter((r) => known && !known.has(r.reservation_id));
  if (fresh.length) say(fresh.map((r) => `New pickup ${codeOf(r)}: ${linesText(r)}`).join(". "));
  known = new Set(pickups.map((r) => r.reservation_id));
}

function pickupItem(r, sig) {
  const code = codeOf(r);
  const headingId = `pick-${r.reservation_id}`;
  linesHere(r).forEach((l) => skus.add(l.sku));
  const button = (action, label, onclick, cls) => el("button",
    { type: "button", "data-action": action, class: cls, onclick },
    label, el("span", { class: "visually-hidden", text: ` (${code})` }));
  const buttons = [
    r.state === "confirmed" && button("ready", "Picked — ready", () => transition(r, "ready", "is ready for collection"), "primary"),
    button("fulfill", "Collected", () => transition(r, "fulfill", "was collected"), r.state === "ready" ? "primary" : null),
    button("release", "No-show", () => noShow(r), "danger"),
  ];
  const overdue = r.expires_at && Date.parse(r.expires_at) < Date.now();
  return el("li", { "data-id": r.reservation_id, "data-sig": sig, "data-testid": "pickup",
    "data-hold-code": code, class: `pickup state-${r.state}${r.at_risk ? " at-risk" : ""}` },
  el("article", { "aria-labelledby": headingId },
    el("h3", { id: headingId },
      el("span", { class: "code", "data-testid": "pickup-code", text: code }),
      el("span", { class: "who", text: r.customer_ref ? `Customer ${r.customer_ref}` : "No customer reference" })),
    el("p", { class: "state", "data-testid": "pickup-state", text: STATES[r.state] || r.state }),
    r.at_risk && el("p", { class: "badge-risk", text: "At risk: stock here is short for this pickup" }),
    el("ul", { class: "lines", "aria-label": "Items" },
      linesHere(r).map((l) => el("li", {}, el("strong", { text: `${l.qty} ×` }), ` ${l.sku}`))),
    el("p", { class: overdue ? "deadline overdue" : "deadline" },
      r.expires_at ? [overdue ? "Overdue since " : "Collect by ", timeEl(r.expires_at)] : "No pickup deadline"),
    el("div", { class: "actions" }, buttons)));
}

async function transition(r, action, done) {
  const id = r.reservation_id;
  if (busy.has(id)) return;
  busy.add(id);
  document.querySelector(`[data-id="${CSS.escape(id)}"]`)?.setAttribute("aria-busy", "true");
  showError("");
  try {
    await api(`/v1/reservations/${enc(id)}/${action}`, { method: "POST" });
    say(`${codeOf(r)} ${done}.`);
  } catch (err) {
    showError(`${codeOf(r)}: ${err.detail || err}`);
  } finally {
    busy.delete(id);
    document.querySelector(`[data-id="${CSS.escape(id)}"]`)?.removeAttribute("aria-busy");
    await refresh();
  }
}

function noShow(r) {
  const dialog = $("#noshow");
  const who = r.customer_ref ? ` for customer ${r.customer_ref}` : "";
  $("#noshow-text").textContent =
    `Pickup ${codeOf(r)}${who} (${linesText(r)}): the units go back on sale. This cannot be undone.`;
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "release") transition(r, "release", "was released as a no-show");
  };
  dialog.showModal();
}
$("#noshow-cancel").addEventListener("click", () => $("#noshow").close("cancel"));
$("#noshow-confirm").addEventListener("click", () => $("#noshow").close("release"));

function renderRisk(reservations) {
  const box = $("#risk");
  const sig = JSON.stringify(reservations.map((r) => [r.reservation_id, r.state, r.lines]));
  if (box.dataset.sig === sig) return; // unchanged: nothing to re-announce
  box.dataset.sig = sig;
  reservations.forEach((r) => linesHere(r).forEach((l) => skus.add(l.sku)));
  const n = reservations.length;
  box.replaceChildren(...(n ? [
    el("h2", { text: `Warning: ${n} reservation${n === 1 ? "" : "s"} at risk here` }),
    el("p", { text: "Stock here fell below what these holds need (a till sale, a recount). "
      + "Find them another store or contact the customer." }),
    el("ul", {}, reservations.map((r) => el("li", { "data-testid": "at-risk" },
      el("strong", { text: codeOf(r) }),
      ` · ${r.customer_ref || "no customer reference"} · ${r.state} · ${linesText(r)}`))),
  ] : []));
}

async function loadStock() {
  const here = enc(store.location_id);
  const cell = (name, value) => el("td",
    { "data-testid": `stock-${name}`, class: value < 0 ? "negative" : null, text: String(value) });
  const rows = await Promise.all([...skus].sort().map(async (sku) => {
    const head = el("th", { scope: "row", text: sku });
    try {
      const p = await api(`/v1/stock/${here}/${enc(sku)}`);
      return el("tr", { "data-testid": `stock-row-${sku}` }, head,
        cell("on-hand", p.on_hand), cell("reserved", p.reserved), cell("available", p.available));
    } catch (err) {
      return el("tr", {}, head, el("td", { colspan: 3, text: err.detail || String(err) }));
    }
  }));
  const empty = el("tr", {}, el("td", { colspan: 4, class: "hint", text: "No items yet." }));
  $("#stock tbody").replaceChildren(...(rows.length ? rows : [empty]));
}
