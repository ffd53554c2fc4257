// The returns desk: find an order by hold code or reservation id, show what was collected and
// what came back already, and take lines back here, each with a disposition (POST /v1/returns).
import { $, ApiError, api, el, errorText, newId } from "./common.js";
import { t } from "./i18n.js";
import { codeOf, enc, here, page } from "./store-page.js";

const HOLD_CODE = /^[A-Za-z0-9]{3}-?[A-Za-z0-9]{4}$/; // as the API's hold code paths
const DISPOSITIONS = ["restock", "inspect", "damaged"];
let order = null; // the reservation on the desk
let pending = null; // {id, body}: a retry of the same return reuses its id (idempotent)
let message = null; // () => the desk's last message (said again after a language switch)

const setError = (text) => { $("#returns-error").textContent = text || ""; };

function say(text) {
  message = text;
  $("#returns-status").textContent = text ? text() : "";
}

export function startReturns() {
  $("#find-form").addEventListener("submit", (event) => {
    event.preventDefault();
    find(event.target.order.value.trim());
  });
  $("#return-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
}

/** What of an order may still come back, by hold code (while Redis keeps the reservation) or
 * reservation id: {reservation_id, hold_code, state, lines: [{sku, fulfilled, returned,
 * returnable}], return_ids}. A desk sees any order (it takes any back at its own store). */
async function lookUp(text) {
  if (HOLD_CODE.test(text)) {
    try {
      return await api(`/v1/holds/${enc(text)}/returnable`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err; // maybe an id after all
    }
  }
  return api(`/v1/reservations/${enc(text)}/returnable`);
}

async function find(text) {
  setError("");
  say(null);
  pending = null;
  try {
    order = await lookUp(text);
  } catch (err) {
    order = null;
    renderReturns();
    if (err instanceof ApiError && err.status === 404) setError(t("returns.not_found", { text }));
    else setError(errorText(err));
    return;
  }
  renderReturns();
  $("#return-order-h").focus();
}

/** Shows the order on the desk (again, e.g. in another language). */
export function renderReturns() {
  const form = $("#return-form");
  say(message);
  if (!order) {
    form.hidden = true;
    return;
  }
  const r = order;
  form.hidden = false;
  $("#return-order-h").textContent = t("returns.order", { code: codeOf(r) });
  const fulfilled = r.state === "fulfilled";
  $("#return-order-facts").textContent = [
    t(`state.${r.state}`), t("returns.reservation_id", { id: r.reservation_id }),
  ].join(" · ");
  const rows = r.lines.map((l) => {
    page.skus.add(l.sku);
    const left = l.returnable;
    return el("tr", { "data-testid": "return-line", "data-sku": l.sku },
      el("th", { scope: "row", text: l.sku }),
      el("td", { "data-testid": "collected", text: String(l.fulfilled) }),
      el("td", { "data-testid": "returned", text: String(l.returned) }),
      el("td", {}, el("input", {
        type: "number", name: "qty", min: 0, max: left, step: 1, value: 0, disabled: !left,
        "aria-label": t("returns.qty_of", { sku: l.sku, left }), class: "qty",
      })),
      el("td", {}, el("select", { name: "disposition", disabled: !left,
        "aria-label": t("returns.disposition_of", { sku: l.sku }) },
      DISPOSITIONS.map((d) => el("option", { value: d, text: t(`disposition.${d}`) })))));
  });
  $("#return-lines tbody").replaceChildren(...rows);
  form.querySelector("button[type=submit]").disabled = !fulfilled;
  if (!fulfilled) say(() => t("returns.not_collected", { state: t(`state.${r.state}`) }));
}

async function submit() {
  setError("");
  const lines = [...$("#return-lines tbody").querySelectorAll("tr")].map((row) => ({
    sku: row.dataset.sku,
    location_id: here(),
    qty: Number(row.querySelector("input").value),
    disposition: row.querySelector("select").value,
  })).filter((l) => l.qty > 0);
  if (!lines.length) {
    setError(t("returns.nothing"));
    $("#return-lines input:not([disabled])")?.focus();
    return;
  }
  const body = JSON.stringify({ reservation_id: order.reservation_id, lines });
  if (pending?.body !== body) pending = { id: newId("desk"), body };
  try {
    const done = await api("/v1/returns", {
      method: "POST", body: { return_id: pending.id, reservation_id: order.reservation_id, lines },
    });
    pending = null;
    const text = () => done.lines.map((l) => t("returns.line_done", {
      qty: l.qty, sku: l.sku, disposition: t(`disposition.${l.disposition}`),
    })).join(", ");
    order = await api(`/v1/reservations/${enc(order.reservation_id)}/returnable`);
    const code = codeOf(order);
    message = () => t("returns.done", { code, lines: text(), id: done.return_id });
    renderReturns();
  } catch (err) {
    setError(t("returns.failed", { detail: errorText(err) }));
  }
  await page.refresh();
  $("#returns-status").focus();
}
