// Staff page of one store: the pick list, live from the store's event stream, the at-risk
// warning with re-sourcing, the returns desk, the inspection queue and incoming transfers.
import {
  $, ApiError, api, apiKey, coalesced, el, errorText, readEvents, sleep, timeEl, withApiKey,
} from "./common.js";
import { clockTime, language, onLanguage, startLanguage, t } from "./i18n.js";
import { loadInspection, renderInspection } from "./store-inspection.js";
import { renderReturns, startReturns } from "./store-returns.js";
import { loadRisk } from "./store-risk.js";
import { codeOf, enc, linesHere, linesText, page } from "./store-page.js";
import { loadTransfers, renderTransfers } from "./store-transfers.js";

const STALE_MS = 45000; // no bytes at all (not even a keepalive) for this long: reconnect
const POLL_MS = 15000; // without a stream, refresh this often

const busy = new Set(); // reservation ids with a transition in flight
let known = null; // ids on the pick list, to announce new arrivals
let lastPicks = null; // the pick list as last read, to render again in another language
let liveState = null; // [state, catalogue key, params] of the connection indicator

await startLanguage();
onLanguage(() => {
  if (liveState) setLive(...liveState);
  if (!page.store) return;
  showTitle();
  if (lastPicks) renderPicks(lastPicks, { force: true });
  renderInspection({ force: true });
  renderTransfers({ force: true });
  renderReturns();
  refresh();
});

withApiKey(async () => {
  try {
    const { locations } = await api("/v1/locations");
    const wanted = new URLSearchParams(location.search).get("location");
    page.store = locations.find((l) => l.location_id === wanted)
      || (!wanted && locations.length === 1 ? locations[0] : null);
    if (!page.store) {
      chooseLocation(locations, wanted);
      return;
    }
    page.locations = new Map(locations.map((l) => [l.location_id, l]));
    showTitle();
    $("#board").hidden = false;
    startReturns();
    setInterval(refresh, 60000); // deadlines ("in 5 minutes") age; also a safety net
    live();
  } catch (err) {
    page.showError(errorText(err));
  }
});

function showTitle() {
  document.title = t("store.title_at", { store: page.store.name });
  $("#title").textContent = t("store.heading_at", { store: page.store.name });
}

function chooseLocation(locations, wanted) {
  if (!locations.length) {
    page.showError(t("store.no_locations"));
    return;
  }
  if (wanted) page.showError(t("store.unknown_location", { location: wanted }));
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

function setLive(state, key, params = {}) {
  liveState = [state, key, params];
  $("#live").hidden = false;
  $("#live").dataset.state = state;
  $("#live-text").textContent = t(key, params);
}

/** Keeps the event stream open (reconnecting with backoff); any event refreshes the page. */
async function live() {
  let lastId = null;
  let delay = 1000;
  let notice = null; // "Reconnecting…" shows only if a reconnect takes a while
  setLive("connecting", "live.connecting");
  while (apiKey()) {
    const abort = new AbortController();
    let seen = Date.now();
    const watchdog = setInterval(() => Date.now() - seen > STALE_MS && abort.abort(), 5000);
    try {
      await readEvents(`/v1/locations/${enc(page.store.location_id)}/events`, {
        signal: abort.signal,
        lastEventId: lastId,
        onOpen: () => {
          clearTimeout(notice);
          setLive("live", "live.on");
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
        setLive("off", "live.polling", { detail: err.detail });
        setInterval(refresh, POLL_MS);
        return;
      }
    } finally {
      clearInterval(watchdog);
    }
    clearTimeout(notice);
    notice = setTimeout(() => setLive("off", "live.reconnecting"), 3000);
    await sleep(delay);
    delay = Math.min(delay * 2, 30000);
  }
}

const refresh = coalesced(load); // events during a refresh: one more round, not one each
page.refresh = refresh;

async function load() {
  const here = enc(page.store.location_id);
  const [picks] = await Promise.allSettled([
    api(`/v1/locations/${here}/pickups?state=confirmed&state=ready`),
    loadRisk(),
    loadInspection(),
    loadTransfers(),
  ]);
  const at = clockTime();
  if (picks.status === "fulfilled") {
    lastPicks = picks.value.pickups;
    renderPicks(lastPicks);
    const n = lastPicks.length;
    $("#picks-summary").textContent = n
      ? t("picks.summary", { count: n, at })
      : t("picks.none", { at });
  } else {
    $("#picks-summary").textContent = t("picks.failed", { at, detail: errorText(picks.reason) });
  }
  await loadStock();
}

function renderPicks(pickups, { force = false } = {}) {
  const list = $("#picks");
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const focus = focused && { id: focused.closest("[data-id]").dataset.id, action: focused.dataset.action };
  const old = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const deadline = (r) => (r.expires_at ? Date.parse(r.expires_at) : Infinity);
  const items = [...pickups].sort((a, b) => deadline(a) - deadline(b)).map((r) => {
    const sig = JSON.stringify([language(), r.state, r.expires_at, r.at_risk, r.lines, r.customer_ref]);
    const prev = old.get(r.reservation_id);
    return !force && prev && prev.dataset.sig === sig ? prev : pickupItem(r, sig); // unchanged: keep node
  });
  items.forEach((item, i) => {
    if (list.children[i] !== item) list.insertBefore(item, list.children[i] || null);
  });
  while (list.children.length > items.length) list.lastElementChild.remove();
  for (const stale of old.values()) if (!items.includes(stale)) stale.remove();
  if (focus && !list.contains(document.activeElement)) {
    const li = items.find((item) => item.dataset.id === focus.id);
    const target = li && (li.querySelector(`[data-action="${focus.action}"]`) || li.querySelector("button"));
    (target || $("#picks-h")).focus();
  }
  const fresh = pickups.filter((r) => known && !known.has(r.reservation_id));
  if (fresh.length) {
    page.say(fresh.map((r) => t("picks.new", { code: codeOf(r), lines: linesText(linesHere(r)) })).join(" "));
  }
  known = new Set(pickups.map((r) => r.reservation_id));
}

function pickupItem(r, sig) {
  const code = codeOf(r);
  const headingId = `pick-${r.reservation_id}`;
  linesHere(r).forEach((l) => page.skus.add(l.sku));
  const button = (action, label, onclick, cls) => el("button",
    { type: "button", "data-action": action, class: cls, onclick },
    label, el("span", { class: "visually-hidden", text: ` (${code})` }));
  const buttons = [
    r.state === "confirmed" && button("ready", t("picks.ready"), () => transition(r, "ready", "picks.done_ready"), "primary"),
    button("fulfill", t("picks.collected"), () => transition(r, "fulfill", "picks.done_collected"), r.state === "ready" ? "primary" : null),
    button("release", t("picks.no_show"), () => noShow(r), "danger"),
  ];
  const overdue = r.expires_at && Date.parse(r.expires_at) < Date.now();
  const stateKey = `state.${r.state}`;
  return el("li", { "data-id": r.reservation_id, "data-sig": sig, "data-testid": "pickup",
    "data-hold-code": code, class: `pickup state-${r.state}${r.at_risk ? " at-risk" : ""}` },
  el("article", { "aria-labelledby": headingId },
    el("h3", { id: headingId },
      el("span", { class: "code", "data-testid": "pickup-code", text: code }),
      el("span", { class: "who", text: r.customer_ref ? t("picks.customer", { ref: r.customer_ref }) : t("picks.no_customer") })),
    el("p", { class: "state", "data-testid": "pickup-state", text: t(stateKey) }),
    r.at_risk && el("p", { class: "badge-risk", text: t("picks.at_risk") }),
    el("ul", { class: "lines", "aria-label": t("picks.items") },
      linesHere(r).map((l) => el("li", {}, el("strong", { text: t("item.qty", { qty: l.qty }) }), ` ${l.sku}`))),
    el("p", { class: overdue ? "deadline overdue" : "deadline" },
      r.expires_at
        ? [t(overdue ? "picks.overdue_since" : "picks.collect_by"), " ", timeEl(r.expires_at)]
        : t("picks.no_deadline")),
    el("div", { class: "actions" }, buttons)));
}

async function transition(r, action, doneKey) {
  const id = r.reservation_id;
  if (busy.has(id)) return;
  busy.add(id);
  document.querySelector(`[data-id="${CSS.escape(id)}"]`)?.setAttribute("aria-busy", "true");
  page.showError("");
  try {
    await api(`/v1/reservations/${enc(id)}/${action}`, { method: "POST" });
    page.say(t(doneKey, { code: codeOf(r) }));
  } catch (err) {
    page.showError(t("picks.failed_action", { code: codeOf(r), detail: errorText(err) }));
  } finally {
    busy.delete(id);
    document.querySelector(`[data-id="${CSS.escape(id)}"]`)?.removeAttribute("aria-busy");
    await refresh();
  }
}

function noShow(r) {
  const dialog = $("#noshow");
  const lines = linesText(linesHere(r));
  $("#noshow-text").textContent = r.customer_ref
    ? t("noshow.text_customer", { code: codeOf(r), ref: r.customer_ref, lines })
    : t("noshow.text", { code: codeOf(r), lines });
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "release") transition(r, "release", "picks.done_released");
  };
  dialog.showModal();
}
$("#noshow-cancel").addEventListener("click", () => $("#noshow").close("cancel"));
$("#noshow-confirm").addEventListener("click", () => $("#noshow").close("release"));

async function loadStock() {
  const here = enc(page.store.location_id);
  const cell = (name, value) => el("td",
    { "data-testid": `stock-${name}`, class: value < 0 ? "negative" : null, text: String(value) });
  const rows = await Promise.all([...page.skus].sort().map(async (sku) => {
    const head = el("th", { scope: "row", text: sku });
    try {
      const p = await api(`/v1/stock/${here}/${enc(sku)}`);
      return el("tr", { "data-testid": `stock-row-${sku}` }, head,
        cell("on-hand", p.on_hand), cell("reserved", p.reserved), cell("available", p.available),
        cell("quality-control", p.quality_control ?? 0), cell("damaged", p.damaged ?? 0),
        cell("in-transit", p.in_transit ?? 0));
    } catch (err) {
      return el("tr", {}, head, el("td", { colspan: 6, text: errorText(err) }));
    }
  }));
  const empty = el("tr", {}, el("td", { colspan: 7, class: "hint", text: t("stock.empty") }));
  $("#stock tbody").replaceChildren(...(rows.length ? rows : [empty]));
}
