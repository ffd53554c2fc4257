// What the parts of the store page share: the store, the SKUs of the stock panel, messages.
import { $ } from "./common.js";
import { t } from "./i18n.js";

export const page = {
  store: null, // the location: {location_id, name, lat, lon, …}
  locations: new Map(), // every location this key sees, by id (names of other stores)
  skus: new Set(), // stock panel rows: items the page has shown since it was opened
  say: (text) => { $("#status").textContent = text; },
  showError: (text) => { $("#error").textContent = text || ""; },
  refresh: async () => {}, // set by store.js: read everything again (coalesced)
};

export const enc = encodeURIComponent;
export const here = () => page.store.location_id;
export const codeOf = (r) => r.hold_code || r.reservation_id;
export const linesHere = (r) => r.lines.filter((l) => l.location_id === here());
export const linesText = (lines) => lines.map((l) => t("item.line", { qty: l.qty, sku: l.sku })).join(", ");
export const nameOf = (locationId) => page.locations.get(locationId)?.name || locationId;
