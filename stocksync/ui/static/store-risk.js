// The at-risk warning: holds here that stock no longer covers, each with the nearest stores
// that have every item it needs here, and a button that moves the hold there in one step
// (POST /v1/reservations/{id}/move: units stay promised, deadline and state are kept).
import { $, api, el, errorText } from "./common.js";
import { distance, language, t } from "./i18n.js";
import { codeOf, enc, here, linesHere, linesText, page } from "./store-page.js";

const CHOICES = 3; // stores offered per hold, nearest first
const busy = new Set(); // reservation ids being moved

/** Reads the holds at risk here and their alternatives, and shows them. */
export async function loadRisk() {
  const { reservations } = await api(`/v1/reservations?at_risk=true&location_id=${enc(here())}`);
  reservations.forEach((r) => linesHere(r).forEach((l) => page.skus.add(l.sku)));
  const choices = await Promise.all(reservations.map(alternatives));
  render(reservations, choices);
}

/** Stores other than this one with pickup where every line of the hold here fits now, nearest
 * first: [{location_id, name, distance_km, available}], or null when they could not be read. */
async function alternatives(r) {
  const lines = linesHere(r);
  const { lat, lon } = page.store;
  const near = lat != null && lon != null ? `&near=${lat},${lon}` : "";
  try {
    const reads = await Promise.all(lines.map((l) =>
      api(`/v1/availability?sku=${enc(l.sku)}${near}&pickup=true`)));
    const fits = reads.map((read, i) => new Map(read.locations
      .filter((loc) => loc.location_id !== here() && loc.available >= lines[i].qty)
      .map((loc) => [loc.location_id, loc])));
    const [first, ...rest] = fits;
    return [...first.values()]
      .filter((loc) => rest.every((m) => m.has(loc.location_id)))
      .sort((a, b) => (a.distance_km ?? Infinity) - (b.distance_km ?? Infinity))
      .slice(0, CHOICES);
  } catch {
    return null;
  }
}

function render(reservations, choices) {
  const box = $("#risk");
  const sig = JSON.stringify([language(), reservations.map((r) => [r.reservation_id, r.state, r.lines]), choices]);
  if (box.dataset.sig === sig) return; // unchanged: nothing to re-announce
  box.dataset.sig = sig;
  const n = reservations.length;
  box.replaceChildren(...(n ? [
    el("h2", { text: t("risk.heading", { count: n }) }),
    el("p", { text: t("risk.text") }),
    el("ul", { class: "risk-list" }, reservations.map((r, i) => item(r, choices[i]))),
  ] : []));
}

function item(r, stores) {
  const code = codeOf(r);
  const lines = linesHere(r);
  const moveButton = (s) => el("button", {
    type: "button", class: "primary", "data-testid": "resource", "data-location-id": s.location_id,
    onclick: () => move(r, s),
  }, s.distance_km == null
    ? t("risk.move_to", { store: s.name })
    : t("risk.move_to_km", { store: s.name, distance: distance(s.distance_km) }),
  el("span", { class: "visually-hidden", text: ` (${code})` }));
  let offer;
  if (stores === null) offer = el("p", { class: "hint", text: t("risk.lookup_failed") });
  else if (!stores.length) offer = el("p", { class: "hint", text: t("risk.nowhere") });
  else offer = el("div", { class: "actions" }, stores.map(moveButton));
  return el("li", { "data-testid": "at-risk", "data-id": r.reservation_id },
    el("p", {},
      el("strong", { text: code }),
      ` · ${r.customer_ref || t("picks.no_customer")} · ${t(`state.${r.state}`)} · ${linesText(lines)}`),
    stores && stores.length ? el("p", { class: "hint", text: t("risk.nearest") }) : null,
    offer);
}

async function move(r, target) {
  const id = r.reservation_id;
  if (busy.has(id)) return;
  busy.add(id);
  page.showError("");
  const notice = $("#notice");
  try {
    await api(`/v1/reservations/${enc(id)}/move`, {
      method: "POST", body: { from_location_id: here(), to_location_id: target.location_id },
    });
    notice.textContent = t("risk.moved", { code: codeOf(r), store: target.name });
  } catch (err) {
    notice.textContent = "";
    page.showError(t("risk.move_failed", { code: codeOf(r), store: target.name, detail: errorText(err) }));
  } finally {
    busy.delete(id);
    await page.refresh();
    if (!document.activeElement || document.activeElement === document.body) notice.focus();
  }
}
