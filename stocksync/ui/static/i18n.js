// The pages' languages. Every user-visible string is in one catalogue per language
// (/ui/static/i18n/<code>.json, flat keys); the HTML names its strings by key (data-i18n for the
// text, data-i18n-attr="attribute:key;…" for attributes) and the scripts call t(key, params).
// The language comes from localStorage (the page's switch), else the browser's languages
// (German for any de*, else English); numbers and dates are formatted with Intl for it.
export const LANGUAGES = ["en", "de"];
const STORED = "stocksync.lang";
const catalogues = new Map(); // code -> {key: text | {one, other}}
const listeners = [];
let current = "en";

/** The language the page starts in. */
export function preferredLanguage() {
  const stored = localStorage.getItem(STORED);
  if (LANGUAGES.includes(stored)) return stored;
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language || ""];
  return wanted.some((tag) => /^de(-|$)/i.test(tag)) ? "de" : "en";
}

/** The BCP 47 locale for formatting in `code`: the browser's own variant of it when it has one
 * (en-GB, de-AT), else the language itself. */
export function localeOf(code = current) {
  const tags = navigator.languages?.length ? navigator.languages : [navigator.language || ""];
  return tags.find((tag) => tag.toLowerCase().split("-")[0] === code) || code;
}

export const language = () => current;

async function catalogue(code) {
  if (!catalogues.has(code)) {
    const response = await fetch(`/ui/static/i18n/${code}.json`);
    if (!response.ok) throw new Error(`catalogue ${code}: ${response.status}`);
    catalogues.set(code, await response.json());
  }
  return catalogues.get(code);
}

/** Loads a language's catalogue (for a text in another language than the page's, e.g. the
 * chat customer's), so tIn(code, …) can use it. */
export const loadLanguage = (code) => catalogue(code);

function format(code, value, params) {
  const numbers = new Intl.NumberFormat(localeOf(code));
  return value.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in params)) return whole;
    const v = params[name];
    return typeof v === "number" ? numbers.format(v) : String(v);
  });
}

/** The text of `key` in language `code`, with {name} placeholders filled from `params`; a
 * plural entry ({one, other, …}) is chosen by params.count. */
export function tIn(code, key, params = {}) {
  const entries = catalogues.get(code) || {};
  let value = entries[key];
  if (value === undefined) {
    console.error(`i18n: no "${key}" in ${code}`);
    return key;
  }
  if (typeof value === "object") {
    const rule = new Intl.PluralRules(localeOf(code)).select(params.count ?? 0);
    value = value[rule] ?? value.other;
  }
  return format(code, value, params);
}

/** The text of `key` in the page's language. */
export const t = (key, params) => tIn(current, key, params);

/** Whether the page's catalogue has `key` (an error code's own message, say). */
export const has = (key) => key in (catalogues.get(current) || {});

/** Puts the catalogue's texts into the marked elements under `root`. */
export function translate(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}

/** Switches the page to `code`: loads its catalogue, sets <html lang>, translates the marked
 * elements and tells the page (onLanguage) to render its own content again. */
export async function setLanguage(code, { remember = true } = {}) {
  await catalogue(code);
  current = code;
  if (remember) localStorage.setItem(STORED, code);
  document.documentElement.lang = code;
  translate();
  const choice = document.querySelector("#lang");
  if (choice) choice.value = code;
  for (const listener of listeners) listener(code);
}

/** Calls `listener(code)` after every language switch. */
export const onLanguage = (listener) => listeners.push(listener);

/** Starts the page's language and wires its switch (a <select id="lang">). */
export async function startLanguage() {
  const choice = document.querySelector("#lang");
  choice?.addEventListener("change", () => setLanguage(choice.value));
  await setLanguage(preferredLanguage(), { remember: false });
}

// -- formatting ------------------------------------------------------------------------------

/** "Thu 10:00" / "Do., 10:00": a weekday and a time, for the next few days. */
export function weekdayTime(ms, code = current) {
  return new Intl.DateTimeFormat(localeOf(code), {
    weekday: "short", hour: "2-digit", minute: "2-digit",
  }).format(new Date(ms));
}

/** "Thursday 4 December, 10:00" / "Donnerstag, 4. Dezember um 10:00": for a customer. */
export function longDateTime(ms, code = current) {
  return new Intl.DateTimeFormat(localeOf(code), {
    weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit",
  }).format(new Date(ms));
}

/** "Tue, 4 Mar, 14:00". */
export function dateTime(ms, code = current) {
  return new Intl.DateTimeFormat(localeOf(code), {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  }).format(new Date(ms));
}

/** "14:05:09": when a list was refreshed. */
export const clockTime = (ms = Date.now()) =>
  new Intl.DateTimeFormat(localeOf(), { timeStyle: "medium" }).format(new Date(ms));

/** "in 2 hours" / "in 2 Stunden". */
export function relative(ms) {
  const minutes = Math.round((ms - Date.now()) / 60000);
  const rel = new Intl.RelativeTimeFormat(localeOf(), { numeric: "auto" });
  if (Math.abs(minutes) < 90) return rel.format(minutes, "minute");
  if (Math.abs(minutes) < 48 * 60) return rel.format(Math.round(minutes / 60), "hour");
  return rel.format(Math.round(minutes / 1440), "day");
}

export const number = (n) => new Intl.NumberFormat(localeOf()).format(n);

/** "2.6 km" / "2,6 km". */
export const distance = (km) => new Intl.NumberFormat(localeOf(), {
  style: "unit", unit: "kilometer", maximumFractionDigits: 1, minimumFractionDigits: 1,
}).format(km);
