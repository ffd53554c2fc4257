// Chat agent: find stock near the customer, hold one, and hand over the hold code.
import { $, api, el, timeEl, withApiKey } from "./common.js";

const DAY = 86400;
const TERMINAL = ["fulfilled", "released", "expired"];
const STATES = { held: "Held", confirmed: "Order placed", ready: "Ready for pickup" };
const enc = encodeURIComponent;

let search = null; // the last search: {sku, near, radius, place}
let target = null; // the store row chosen for a hold: {location_id, name, button}
let pending = null; // {id, body}: a retry of the same hold reuses its id (idempotent)
let held = null; // {reservation, store}: the hold on show

const showError = (text) => { $("#error").textContent = text || ""; };

function newReservationId() {
  if (crypto.randomUUID) return `chat-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
  return `chat-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

withApiKey(() => $("#sku").focus());

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
  const area = $("#area");
  search = {
    sku: form.sku.value.trim(),
    near: form.near.value.replace(/\s/g, ""),
    radius: form.radius.value,
    place: area.value ? area.selectedOptions[0].text : form.near.value.trim(),
  };
  closeHold(false);
  runSearch();
});

async function runSearch() {
  const query = new URLSearchParams({
    sku: search.sku, near: search.near, radius_km: search.radius, pickup: "true", channel: "chat",
  });
  try {
    renderResults(await api(`/v1/availability?${query}`));
  } catch (err) {
    showError(`Search failed: ${err.detail || err}`);
  }
}

function renderResults({ sku, total_available: total, locations }) {
  $("#results").hidden = false;
  $("#results-h").textContent = `${sku} near ${search.place}`;
  const n = locations.length;
  $("#results-summary").textContent = n
    ? `${n} pickup store${n === 1 ? "" : "s"} within ${search.radius} km; ${total} available in total.`
    : `No pickup store within ${search.radius} km stocks ${sku}.`;
  $("#results-table").hidden = !n;
  $("#results-table tbody").replaceChildren(...locations.map((l) => {
    const action = l.available > 0
      ? el("button", { type: "button", onclick: (e) => openHold(l, e.currentTarget) },
        "Hold 1", el("span", { class: "visually-hidden", text: ` at ${l.name}` }))
      : el("span", { class: "hint", text: "None available" });
    return el("tr", { "data-testid": "result-row", "data-location-id": l.location_id },
      el("th", { scope: "row", text: l.name }),
      el("td", { text: l.distance_km == null ? "—" : `${l.distance_km.toFixed(1)} km` }),
      el("td", { "data-testid": "available", text: String(Math.max(0, l.available)) }),
      el("td", {}, action));
  }));
}

function openHold(location, button) {
  target = { ...location, button };
  showError("");
  $("#hold-h").textContent = `Hold 1 × ${search.sku} at ${location.name}`;
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
  if (pending?.body !== json) pending = { id: newReservationId(), body: json };
  showError("");
  let reservation;
  try {
    reservation = await api("/v1/reservations", {
      method: "POST", body: { reservation_id: pending.id, ...body },
    });
  } catch (err) {
    showError(`No hold placed: ${err.detail || err}`);
    if (err.code === "insufficient_stock") runSearch(); // the numbers moved: show them
    return;
  }
  pending = null;
  const store = target.name;
  closeHold(false);
  showPlaced(reservation, store, `Hold ${codeOf(reservation)} placed.`);
  $("#placed-h").focus();
  runSearch();
});

const codeOf = (r) => r.hold_code || r.reservation_id;

function showPlaced(reservation, store, message) {
  held = { reservation, store };
  const r = reservation;
  $("#placed").hidden = false;
  $("#placed-h").textContent = TERMINAL.includes(r.state) ? `Hold ${r.state}` : "Hold placed";
  $("#hold-code").textContent = codeOf(r);
  const facts = [
    ["Item", r.lines.map((l) => `${l.qty} × ${l.sku}`).join(", ")],
    ["Store", store],
    ["Customer reference", r.customer_ref || "none"],
    ["State", STATES[r.state] || r.state],
    ["Expires", r.expires_at && !TERMINAL.includes(r.state) ? timeEl(r.expires_at) : "—"],
    ["Reservation id", r.reservation_id],
  ];
  $("#placed-facts").replaceChildren(...facts.flatMap(([name, value]) => [
    el("dt", { text: name }),
    el("dd", { "data-testid": `fact-${name.toLowerCase().replace(/ /g, "-")}` }, value),
  ]));
  const active = !TERMINAL.includes(r.state);
  $("#extend").hidden = !active;
  $("#release").hidden = !active;
  $("#placed-status").textContent = message;
}

async function act(action, body, done, failed) {
  showError("");
  const { reservation, store } = held;
  try {
    const r = await api(`/v1/reservations/${enc(reservation.reservation_id)}/${action}`, {
      method: "POST", body,
    });
    showPlaced(r, store, done);
    if (TERMINAL.includes(r.state)) {
      $("#placed-h").focus(); // the focused button is gone
      if (search) runSearch();
    }
  } catch (err) {
    showError(`${failed}: ${err.detail || err}`);
  }
}

$("#extend").addEventListener("click", () => {
  const expires = held.reservation.expires_at;
  const left = expires ? Math.max(0, Math.ceil((Date.parse(expires) - Date.now()) / 1000)) : 0;
  act("extend", { ttl_seconds: left + DAY }, "Extended by 24 hours.", "Not extended");
});

$("#release").addEventListener("click", () => {
  act("release", undefined, "Released: the item is back on sale.", "Not released");
});

$("#copy").addEventListener("click", async () => {
  const code = $("#hold-code").textContent;
  try {
    await navigator.clipboard.writeText(code);
    $("#placed-status").textContent = `Copied ${code} to the clipboard.`;
  } catch {
    // No clipboard here (not a secure context, or refused): select the code to copy by hand.
    const range = document.createRange();
    range.selectNodeContents($("#hold-code"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $("#placed-status").textContent = "The code is selected: press Ctrl+C (⌘C on a Mac) to copy it.";
  }
});
