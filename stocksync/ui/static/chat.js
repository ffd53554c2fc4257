// Chat agent: find stock near the customer (now, and arriving by a date), hold one and hand
// over the hold code, or promise units on their way with a text in the customer's language.
import { $, api, el, errorText, newId, timeEl, withApiKey } from "./common.js";
import {
  distance, language, loadLanguage, localeOf, longDateTime, onLanguage, startLanguage, t, tIn,
  weekdayTime,
} from "./i18n.js";

const DAY = 86400;
const BY_DAYS = 7; // the default "arriving by": a week from today
const TERMINAL = ["fulfilled", "released", "expired"];
const FACTS = [ // [test id, catalogue key] of each fact shown about a hold
  ["item", "placed.fact_item"],
  ["store", "placed.fact_store"],
  ["customer-reference", "placed.fact_customer_reference"],
  ["state", "placed.fact_state"],
  ["expires", "placed.fact_expires"],
  ["reservation-id", "placed.fact_reservation_id"],
];
const enc = encodeURIComponent;

let search = null; // the last search: {sku, near, radius, area, by_ms}
let results = null; // its answer, to render again in another language
let target = null; // the store row chosen for a hold: {location_id, name, button}
let pending = null; // {id, body}: a retry of the same hold reuses its id (idempotent)
let held = null; // {reservation, store, message}: the hold on show
let promise = null; // {sku, store, qty, expected_ms, button}: the arrival being promised

const showError = (text) => { $("#error").textContent = text || ""; };

await startLanguage();
$("#promise-lang").value = language();
$("#by").value = isoDate(new Date(Date.now() + BY_DAYS * DAY * 1000));
onLanguage(() => {
  if (results) renderResults(results);
  if (target) holdHeading();
  if (held) showPlaced(held.reservation, held.store, held.message);
  if (promise) showPromise();
});
withApiKey(() => $("#sku").focus());

/** "2026-12-04": a date input's value for a local day. */
function isoDate(day) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
}

/** The end of a date input's day, local time, in ms. */
function endOfDay(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d, 23, 59, 59).getTime();
}

$("#area").addEventListener("change", (event) => {
  if (event.target.value) $("#near").value = event.target.value;
  else $("#near").focus();
});
$("#near").addEventListener("input", (event) => {
  const typed = event.target.value.replace(/\s/g, "");
  const match = [...$("#area").options].find((o) => o.value && o.value === typed);
  $("#area").value = match ? match.value : "";
});

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  search = {
    sku: form.sku.value.trim(),
    near: form.near.value.replace(/\s/g, ""),
    radius: form.radius.value,
    area: $("#area").selectedOptions[0]?.dataset.i18n || null, // said in the page's language
    typed: form.near.value.trim(),
    by_ms: endOfDay(form.by.value),
  };
  closeHold(false);
  closePromise(false);
  runSearch();
});

async function runSearch() {
  const query = new URLSearchParams({
    sku: search.sku, near: search.near, radius_km: search.radius, pickup: "true", channel: "chat",
    by: new Date(search.by_ms).toISOString().replace(/\.\d{3}Z$/, "Z"),
  });
  try {
    results = await api(`/v1/availability?${query}`);
    renderResults(results);
  } catch (err) {
    showError(t("chat.search_failed", { detail: errorText(err) }));
  }
}

const place = () => (search.area && $("#area").value ? t(search.area) : search.typed);

function renderResults({ sku, total_available: total, locations }) {
  $("#results").hidden = false;
  $("#results-h").textContent = t("chat.results_heading", { sku, place: place() });
  const n = locations.length;
  $("#results-summary").textContent = n
    ? t("chat.summary", { count: n, radius: Number(search.radius), total })
    : t("chat.summary_none", { radius: Number(search.radius), sku });
  $("#results-table").hidden = !n;
  const by = new Intl.DateTimeFormat(localeOf(), {
    weekday: "short", day: "numeric", month: "short",
  }).format(new Date(search.by_ms));
  $("#by-col").textContent = t("chat.col_by", { date: by });
  $("#results-table tbody").replaceChildren(...locations.map((l) => resultRow(sku, l)));
}

function resultRow(sku, l) {
  const next = l.next_arrival || null;
  const expected = next?.expected_at ? Date.parse(next.expected_at) : null;
  const hidden = (text) => el("span", { class: "visually-hidden", text: ` ${text}` });
  const actions = [
    l.available > 0
      ? el("button", { type: "button", onclick: (e) => openHold(l, e.currentTarget) },
        t("chat.hold_one"), hidden(t("chat.at_store", { store: l.name })))
      : el("span", { class: "hint", text: t("chat.none_available") }),
    expected !== null && el("button", {
      type: "button", "data-action": "promise",
      onclick: (e) => openPromise({ sku, store: l.name, qty: next.qty, expected_ms: expected,
        button: e.currentTarget }),
    }, t("chat.promise"), hidden(t("chat.at_store", { store: l.name }))),
  ];
  return el("tr", { "data-testid": "result-row", "data-location-id": l.location_id },
    el("th", { scope: "row", text: l.name }),
    el("td", { text: l.distance_km == null ? "—" : distance(l.distance_km) }),
    el("td", { "data-testid": "available", text: String(Math.max(0, l.available)) }),
    el("td", { "data-testid": "available-by",
      text: l.available_by == null ? "—" : String(Math.max(0, l.available_by)) }),
    el("td", { "data-testid": "arriving" }, expected === null
      ? el("span", { class: "hint", text: t("chat.no_arrival") })
      : t("chat.arriving", { qty: next.qty, when: weekdayTime(expected), store: l.name })),
    el("td", {}, el("div", { class: "actions tight" }, actions)));
}

// -- promising units on their way --------------------------------------------------------

function openPromise(arrival) {
  promise = arrival;
  showPromise();
  $("#promise").hidden = false;
  $("#promise-h").focus();
}

async function showPromise() {
  const code = $("#promise-lang").value;
  await loadLanguage(code);
  const { sku, store, qty, expected_ms: at } = promise;
  $("#promise-h").textContent = t("promise.heading", { sku, store });
  $("#promise-text").value = tIn(code, "promise.message", {
    count: qty, qty, sku, store, when: longDateTime(at, code),
  });
  $("#promise-status").textContent = "";
}

function closePromise(returnFocus) {
  $("#promise").hidden = true;
  if (returnFocus && promise?.button.isConnected) promise.button.focus();
  promise = null;
}

$("#promise-lang").addEventListener("change", () => promise && showPromise());
$("#promise-close").addEventListener("click", () => closePromise(true));
$("#promise").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closePromise(true);
});
$("#promise-copy").addEventListener("click", async () => {
  const field = $("#promise-text");
  try {
    await navigator.clipboard.writeText(field.value);
    $("#promise-status").textContent = t("promise.copied");
  } catch {
    field.focus();
    field.select(); // no clipboard here (not a secure context, or refused): copy by hand
    $("#promise-status").textContent = t("promise.selected");
  }
});

// -- holding one now ---------------------------------------------------------------------

function holdHeading() {
  $("#hold-h").textContent = t("hold.heading", { sku: search.sku, store: target.name });
}

function openHold(location, button) {
  target = { ...location, button };
  showError("");
  holdHeading();
  $("#hold").hidden = false;
  $("#customer-ref").focus();
}

function closeHold(returnFocus) {
  $("#hold").hidden = true;
  $("#hold-form").reset();
  if (returnFocus && target?.button.isConnected) target.button.focus();
  target = null;
}

$("#hold-cancel").addEventListener("click", () => closeHold(true));
$("#hold-form").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeHold(true);
});

$("#hold-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = {
    channel: "chat",
    ttl_seconds: Number(form.ttl_hours.value) * 3600,
    lines: [{ sku: search.sku, location_id: target.location_id, qty: 1 }],
  };
  const ref = form.customer_ref.value.trim();
  if (ref) body.customer_ref = ref;
  const json = JSON.stringify(body);
  if (pending?.body !== json) pending = { id: newId("chat"), body: json };
  showError("");
  let reservation;
  try {
    reservation = await api("/v1/reservations", {
      method: "POST", body: { reservation_id: pending.id, ...body },
    });
  } catch (err) {
    showError(t("hold.failed", { detail: errorText(err) }));
    if (err.code === "insufficient_stock") runSearch(); // the numbers moved: show them
    return;
  }
  pending = null;
  const store = target.name;
  closeHold(false);
  const code = codeOf(reservation);
  showPlaced(reservation, store, () => t("placed.placed", { code }));
  $("#placed-h").focus();
  runSearch();
});

const codeOf = (r) => r.hold_code || r.reservation_id;

function showPlaced(reservation, store, message) {
  held = { reservation, store, message };
  const r = reservation;
  const ended = TERMINAL.includes(r.state);
  $("#placed").hidden = false;
  $("#placed-h").textContent = ended ? t(`placed.heading_${r.state}`) : t("placed.heading");
  $("#hold-code").textContent = codeOf(r);
  const values = [
    r.lines.map((l) => t("item.line", { qty: l.qty, sku: l.sku })).join(", "),
    store,
    r.customer_ref || t("placed.no_customer_ref"),
    t(`chat.state.${r.state}`),
    r.expires_at && !ended ? timeEl(r.expires_at) : "—",
    r.reservation_id,
  ];
  $("#placed-facts").replaceChildren(...FACTS.flatMap(([name, key], i) => [
    el("dt", { text: t(key) }),
    el("dd", { "data-testid": `fact-${name}` }, values[i]),
  ]));
  $("#extend").hidden = ended;
  $("#release").hidden = ended;
  $("#placed-status").textContent = message ? message() : "";
}

async function act(action, body, done, failed) {
  showError("");
  const { reservation, store } = held;
  try {
    const r = await api(`/v1/reservations/${enc(reservation.reservation_id)}/${action}`, {
      method: "POST", body,
    });
    showPlaced(r, store, () => t(done));
    if (TERMINAL.includes(r.state)) {
      $("#placed-h").focus(); // the focused button is gone
      if (search) runSearch();
    }
  } catch (err) {
    showError(t(failed, { detail: errorText(err) }));
  }
}

$("#extend").addEventListener("click", () => {
  const expires = held.reservation.expires_at;
  const left = expires ? Math.max(0, Math.ceil((Date.parse(expires) - Date.now()) / 1000)) : 0;
  act("extend", { ttl_seconds: left + DAY }, "placed.extended", "placed.extend_failed");
});

$("#release").addEventListener("click", () => {
  act("release", undefined, "placed.released", "placed.release_failed");
});

$("#copy").addEventListener("click", async () => {
  const code = $("#hold-code").textContent;
  try {
    await navigator.clipboard.writeText(code);
    held.message = () => t("placed.copied", { code });
  } catch {
    // No clipboard here (not a secure context, or refused): select the code to copy by hand.
    const range = document.createRange();
    range.selectNodeContents($("#hold-code"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    held.message = () => t("placed.selected");
  }
  $("#placed-status").textContent = held.message();
});
