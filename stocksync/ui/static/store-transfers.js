// Incoming transfers: shipped to this store and not yet received
// (GET /v1/transfers?location_id&direction=in&state=shipped). Staff count what arrived per line
// and receive it (POST /v1/transfers/{id}/receive); what is missing is reported as a shortfall.
import { $, api, el, errorText } from "./common.js";
import { dateTime, language, relative, t } from "./i18n.js";
import { enc, here, nameOf, page } from "./store-page.js";

let transfers = null; // the last read
const receipts = []; // transfers received from this page, newest first (for this session)
const busy = new Set(); // transfer ids being received

export async function loadTransfers() {
  try {
    const query = `location_id=${enc(here())}&direction=in&state=shipped`;
    ({ transfers } = await api(`/v1/transfers?${query}`));
  } catch (err) {
    $("#transfers-summary").textContent = t("transfers.failed", { detail: errorText(err) });
    return;
  }
  transfers.forEach((x) => x.lines.forEach((l) => page.skus.add(l.sku)));
  renderTransfers();
}

export function renderTransfers({ force = false } = {}) {
  renderReceipts(force);
  if (!transfers) return;
  const list = $("#transfers");
  const n = transfers.length;
  $("#transfers-summary").textContent = n ? t("transfers.summary", { count: n }) : t("transfers.none");
  const sig = JSON.stringify([language(), transfers.map((x) => [x.transfer_id, x.updated_at])]);
  if (!force && list.dataset.sig === sig) return; // keep what staff typed in
  list.dataset.sig = sig;
  list.replaceChildren(...transfers.map(item));
}

function item(x) {
  const headingId = `xfer-${x.transfer_id}`;
  const expected = x.expected_at ? Date.parse(x.expected_at) : null;
  const rows = x.lines.map((l) => el("tr", { "data-sku": l.sku },
    el("th", { scope: "row", text: l.sku }),
    el("td", { "data-testid": "shipped", text: String(l.shipped) }),
    el("td", {}, el("input", {
      type: "number", min: 0, max: l.shipped, step: 1, value: l.shipped, class: "qty",
      "aria-label": t("transfers.received_of", { sku: l.sku, shipped: l.shipped }),
    }))));
  return el("li", { "data-testid": "transfer", "data-id": x.transfer_id, class: "transfer" },
    el("article", { "aria-labelledby": headingId },
      el("h3", { id: headingId,
        text: t("transfers.from", { id: x.transfer_id, from: nameOf(x.from_location_id) }) }),
      el("p", { class: "hint" }, expected === null ? t("transfers.no_date")
        : t("transfers.expected", { at: dateTime(expected), relative: relative(expected) })),
      el("div", { class: "scroll" }, el("table", { class: "numbers" },
        el("thead", {}, el("tr", {},
          el("th", { scope: "col", text: t("stock.sku") }),
          el("th", { scope: "col", text: t("transfers.shipped") }),
          el("th", { scope: "col", text: t("transfers.received") }))),
        el("tbody", {}, rows))),
      el("div", { class: "actions" }, el("button", {
        type: "button", class: "primary", "data-action": "receive", onclick: (e) => receive(x, e.currentTarget),
      }, t("transfers.receive"), el("span", { class: "visually-hidden", text: ` (${x.transfer_id})` })))));
}

async function receive(x, button) {
  if (busy.has(x.transfer_id)) return;
  page.showError("");
  const article = button.closest("article");
  const lines = [...article.querySelectorAll("tbody tr")].map((row) => ({
    sku: row.dataset.sku, qty: Number(row.querySelector("input").value),
  }));
  const bad = lines.find((l, i) => !Number.isInteger(l.qty) || l.qty < 0 || l.qty > x.lines[i].shipped);
  if (bad) {
    page.showError(t("transfers.bad_qty", { sku: bad.sku }));
    return;
  }
  busy.add(x.transfer_id);
  try {
    const done = await api(`/v1/transfers/${enc(x.transfer_id)}/receive`, {
      method: "POST", body: { lines },
    });
    receipts.unshift(done);
    renderReceipts(true);
  } catch (err) {
    page.showError(t("transfers.receive_failed", { id: x.transfer_id, detail: errorText(err) }));
  } finally {
    busy.delete(x.transfer_id);
    await page.refresh();
    if (!document.activeElement || document.activeElement === document.body) $("#receipts").focus();
  }
}

function renderReceipts(force) {
  const box = $("#receipts");
  if (!receipts.length || (!force && box.dataset.lang === language())) return;
  box.dataset.lang = language();
  box.replaceChildren(
    el("h3", { text: t("transfers.receipts") }),
    el("ul", {}, receipts.map((x) => el("li", { "data-testid": "receipt", "data-id": x.transfer_id },
      t("transfers.receipt", { id: x.transfer_id, from: nameOf(x.from_location_id) }), " ",
      x.lines.map((l) => (l.shortfall
        ? t("transfers.line_short", { sku: l.sku, received: l.received, shipped: l.shipped, missing: l.shortfall })
        : t("transfers.line_full", { sku: l.sku, received: l.received }))).join("; ")))));
}
