// Shared by the staff and chat-agent pages: the API key, JSON API calls, the event stream, DOM.
import { dateTime, has, relative, t } from "./i18n.js";

const KEY = "stocksync.apiKey";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export const $ = (selector) => document.querySelector(selector);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const apiKey = () => sessionStorage.getItem(KEY);

/** A DOM element; text is always set as text (never parsed as HTML). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** A <time> element: "Tue, 4 Mar, 14:00 (in 2 hours)", in the page's language. */
export function timeEl(iso) {
  const at = Date.parse(iso);
  return el("time", {
    datetime: new Date(at).toISOString(),
    text: t("time.with_relative", { at: dateTime(at), relative: relative(at) }),
  });
}

/** What to tell staff about a failed call: the catalogue's text for its code where there is
 * one (e.g. "error.insufficient_stock"), else the server's detail. */
export function errorText(err) {
  if (err instanceof ApiError && has(`error.${err.code}`)) {
    return t(`error.${err.code}`, { detail: err.detail });
  }
  return err.detail || String(err);
}

/** A fresh id for a request the server deduplicates (a retry of the same body reuses it). */
export function newId(prefix) {
  if (crypto.randomUUID) return `${prefix}-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
  return `${prefix}-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** fn wrapped so that calls while it runs coalesce into one more run. */
export function coalesced(fn) {
  let running = null;
  let again = false;
  const run = async () => {
    do {
      again = false;
      await fn();
    } while (again);
  };
  return () => {
    if (running) again = true;
    else running = run().finally(() => { running = null; });
    return running;
  };
}

let onKeyRefused = () => {};

/** Shows the key form until a key is in sessionStorage, then calls start() once. */
export function withApiKey(start) {
  const form = $("#key-form");
  const input = $("#api-key");
  const error = $("#key-error");
  const forget = $("#forget-key");
  let started = false;
  const ask = (message = "") => {
    $("#app").hidden = true;
    forget.hidden = true;
    form.hidden = false;
    error.textContent = message;
    input.focus();
  };
  const begin = () => {
    form.hidden = true;
    $("#app").hidden = false;
    forget.hidden = false;
    if (started) {
      location.reload(); // a new key after a refused one: start clean
      return;
    }
    started = true;
    start();
  };
  onKeyRefused = (message) => {
    sessionStorage.removeItem(KEY);
    ask(message);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      error.textContent = t("key.missing");
      input.focus();
      return;
    }
    sessionStorage.setItem(KEY, key);
    input.value = "";
    begin();
  });
  forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  if (apiKey()) begin();
  else ask();
}

function headers(accept, extra = {}) {
  return { Accept: accept, Authorization: `Bearer ${apiKey()}`, ...extra };
}

async function failure(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // not problem+json (a proxy's page): fall back to the status line
  }
  const detail = problem.detail || `${response.status} ${response.statusText}`.trim();
  if (response.status === 401) onKeyRefused(t("key.refused", { detail }));
  return new ApiError(response.status, problem.code || "error", detail);
}

/** Calls the JSON API; throws ApiError with the problem's detail on failure. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const extra = body === undefined ? {} : { "Content-Type": "application/json" };
  let response;
  try {
    response = await fetch(path, {
      method, signal, cache: "no-store", headers: headers("application/json", extra),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", t("error.network"));
  }
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

/**
 * Reads a text/event-stream with fetch (EventSource cannot send an Authorization header).
 * Calls onOpen once connected, onEvent({type, data, id}) per event and onActivity on any bytes
 * (keepalive comments included). Resolves with the last event id when the server ends the stream.
 */
export async function readEvents(path, { signal, lastEventId, onOpen, onEvent, onActivity }) {
  const extra = lastEventId ? { "Last-Event-ID": lastEventId } : {};
  const response = await fetch(path, {
    signal, cache: "no-store", headers: headers("text/event-stream", extra),
  });
  if (!response.ok) throw await failure(response);
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let lastId = lastEventId;
  let type = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastId;
    onActivity();
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop(); // an incomplete line waits for the next chunk
    for (const raw of lines) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") {
        if (data.length) onEvent({ type: type || "message", data: data.join("\n"), id: lastId });
        type = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: keepalive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") type = val;
      else if (field === "data") data.push(val);
      else if (field === "id") lastId = val;
    }
  }
}
