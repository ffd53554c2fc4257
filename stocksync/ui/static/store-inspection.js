// The inspection queue: returned units waiting in quality_control here, longest waiting first
// (GET /v1/stock/{location}?bucket=quality_control), each back on sale (-> on_hand) or
// damaged (-> damaged) by a move (POST /v1/stock/{location}/{sku}/moves).
import { $, api, el, errorText, newId } from "./common.js";
import { dateTime, language, relative, t } from "./i18n.js";
import { enc, here, page } from "./store-page.js";

const OUTCOMES = { restock: "on_hand", damaged: "damaged" };
let queue = null; // the last read: {waiting, positions}
const pending = new Map(); // sku -> {id, body}: a retry of the same move reuses its id
const busy = new Set(); // SKUs with a move in flight
let message = null; // () => the last outcome, said again after a language switch

export async function loadInspection() {
  try {
    queue = await api(`/v1/stock/${enc(here())}?bucket=quality_control`);
  } catch (err) {
    $("#inspect-summary").textContent = t("inspect.failed", { detail: errorText(err) });
    return;
  }
  queue.positions.forEach((p) => page.skus.add(p.sku));
  renderInspection();
}

export function renderInspection({ force = false } = {}) {
  if (!queue) return;
  const table = $("#inspect");
  const sig = JSON.stringify([language(), queue]);
  const n = queue.positions.length;
  const summary = n ? t("inspect.summary", { count: queue.waiting }) : t("inspect.none");
  $("#inspect-summary").textContent = message ? `${message()} ${summary}` : summary;
  if (!force && table.dataset.sig === sig) return;
  table.dataset.sig = sig;
  const focused = table.contains(document.activeElement) ? document.activeElement : null;
  const focus = focused && [focused.closest("tr").dataset.sku, focused.dataset.action];
  table.hidden = !n;
  $("#inspect tbody").replaceChildren(...queue.positions.map(row));
  if (focus) {
    const again = table.querySelector(`tr[data-sku="${CSS.escape(focus[0])}"] [data-action="${focus[1]}"]`);
    (again || table.querySelector("button") || $("#inspect-h")).focus();
  }
}

function row(p) {
  const since = Date.parse(p.since);
  const qty = el("input", {
    type: "number", min: 1, max: p.quality_control, step: 1, value: p.quality_control,
    class: "qty", "aria-label": t("inspect.qty_of", { sku: p.sku }),
  });
  const button = (outcome, cls) => el("button", {
    type: "button", class: cls, "data-action": outcome,
    onclick: () => decide(p, Number(qty.value), outcome),
  }, t(`inspect.${outcome}`), el("span", { class: "visually-hidden", text: ` (${p.sku})` }));
  return el("tr", { "data-testid": "inspect-row", "data-sku": p.sku },
    el("th", { scope: "row", text: p.sku }),
    el("td", { "data-testid": "inspect-units", text: String(p.quality_control) }),
    el("td", {}, el("time", { datetime: p.since, text: t("time.with_relative", {
      at: dateTime(since), relative: relative(since) }) })),
    el("td", {}, qty),
    el("td", {}, el("div", { class: "actions tight" },
      button("restock", "primary"), button("damaged", "danger"))));
}

async function decide(p, qty, outcome) {
  if (busy.has(p.sku)) return;
  page.showError("");
  if (!Number.isInteger(qty) || qty < 1 || qty > p.quality_control) {
    page.showError(t("inspect.bad_qty", { sku: p.sku, max: p.quality_control }));
    return;
  }
  const move = { from: "quality_control", to: OUTCOMES[outcome], qty, reason: "inspection" };
  const body = JSON.stringify(move);
  if (pending.get(p.sku)?.body !== body) pending.set(p.sku, { id: newId("inspect"), body });
  busy.add(p.sku);
  try {
    await api(`/v1/stock/${enc(here())}/${enc(p.sku)}/moves`, {
      method: "POST",
      body: { ...move, source: "store-page", source_event_id: pending.get(p.sku).id },
    });
    pending.delete(p.sku);
    message = () => t(`inspect.done_${outcome}`, { qty, sku: p.sku });
    page.say(message());
  } catch (err) {
    page.showError(t("inspect.move_failed", { sku: p.sku, detail: errorText(err) }));
  } finally {
    busy.delete(p.sku);
    await page.refresh();
  }
}
