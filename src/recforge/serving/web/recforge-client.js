// recforge-client.js: a small ES module for web pages that show recommendations and send events.
//
// Served by every recforge service at /web/recforge-client.js. No build step, no dependency.
//
//   import { RecforgeClient } from "/web/recforge-client.js";
//   const rf = new RecforgeClient();                      // same origin as the page
//   const recs = await rf.recommend("42", { k: 5 });     // { user, model_version, reason, items }
//   await rf.sendEvent({ user: "42", item: recs.items[0].item, type: "click" });
//
// Keys: reads are public; events need a write key. Do not put a write key in a public page:
// point `eventsUrl` (or `baseUrl`) at your own backend, which checks the visitor's session and
// forwards the event with the key it keeps (see docs/deployment.md, "Web pages"). A key given
// as `apiKey` is only for pages that are themselves private (an internal tool, a kiosk).
//
// Events carry an event id (generated here when absent, once per event), so a retried request
// is stored once: the client retries 429/502/503/504 (honouring Retry-After) and network errors.
"use strict";

export class RecforgeError extends Error {
  constructor(message, status = null, detail = null) {
    super(message);
    this.name = "RecforgeError";
    this.status = status;
    this.detail = detail;
  }
}

const RETRY_STATUSES = new Set([429, 502, 503, 504]);

export function newEventId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") {
    return globalThis.crypto.randomUUID().replaceAll("-", "");
  }
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function retryAfterMs(header) {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, when - Date.now());
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const seg = (id) => encodeURIComponent(String(id));

export class RecforgeClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl=""] where the API is ("" = the page's origin)
   * @param {string|null} [options.eventsUrl=null] where events go instead of baseUrl + "/events"
   *   (your backend, which adds the write key); it receives the same JSON body
   * @param {string|null} [options.apiKey=null] sent as X-API-Key (private pages only)
   * @param {number} [options.timeoutMs=5000] per attempt
   * @param {number} [options.retries=3] further attempts after the first
   * @param {number} [options.backoffMs=200] base of the exponential back-off
   * @param {number} [options.maxBackoffMs=10000] longest single wait (Retry-After included)
   */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl || "").replace(/\/+$/, "");
    this.eventsUrl = options.eventsUrl || null;
    this.apiKey = options.apiKey || null;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 200;
    this.maxBackoffMs = options.maxBackoffMs ?? 10000;
    this.fetch = options.fetch || globalThis.fetch.bind(globalThis);
  }

  async request(method, url, { body = undefined, write = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (write && this.apiKey) headers["X-API-Key"] = this.apiKey;
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.retries;
      let resp;
      try {
        resp = await this.fetch(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (err) {
        if (last) throw new RecforgeError(`${method} ${url}: no answer (${err.name}: ${err.message})`);
        await sleep(this.delay(attempt, null));
        continue;
      }
      let doc = null;
      try { doc = await resp.json(); } catch (e) { doc = null; }
      if (resp.ok) return doc;
      const detail = doc && doc.detail !== undefined ? doc.detail : null;
      const text = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : resp.statusText;
      if (!RETRY_STATUSES.has(resp.status) || last) {
        throw new RecforgeError(`${method} ${url} answered ${resp.status}: ${text}`, resp.status, detail);
      }
      await sleep(this.delay(attempt, resp.headers.get("Retry-After")));
    }
  }

  delay(attempt, retryAfter) {
    const given = retryAfterMs(retryAfter);
    if (given !== null) return Math.min(given, this.maxBackoffMs);
    return Math.min(this.maxBackoffMs, this.backoffMs * 2 ** attempt) * (0.5 + Math.random() / 2);
  }

  /** Top-k items for a user: GET /recommendations/{user}. */
  recommend(user, { k = 10, exclude = [], require = [], details = false, explain = false } = {}) {
    const q = new URLSearchParams({ k: String(k) });
    for (const x of exclude) q.append("exclude", String(x));
    for (const x of require) q.append("require", String(x));
    if (details) q.set("details", "true");
    if (explain) q.set("explain", "true");
    return this.request("GET", `${this.baseUrl}/recommendations/${seg(user)}?${q}`);
  }

  /** Top-k items for an anonymous history (nothing stored): POST /recommendations. */
  recommendHistory(items, { values = undefined, k = 10, exclude = [] } = {}) {
    const body = { items: items.map(String), k, exclude: exclude.map(String) };
    if (values !== undefined) body.values = values;
    return this.request("POST", `${this.baseUrl}/recommendations`, { body });
  }

  /** Items similar to an item: GET /items/{item}/similar. */
  similarItems(item, { k = 10, details = false } = {}) {
    const q = new URLSearchParams({ k: String(k) });
    if (details) q.set("details", "true");
    return this.request("GET", `${this.baseUrl}/items/${seg(item)}/similar?${q}`);
  }

  static eventBody({ user, item, type = "view", value = 1.0, timestamp = undefined, eventId = undefined }) {
    const body = { event_id: eventId || newEventId(), user: String(user), item: String(item), type, value };
    if (timestamp !== undefined && timestamp !== null) body.timestamp = Math.floor(timestamp);
    return body;
  }

  /** Record one event (retried under the same event id): { accepted, duplicates, duplicate_ids, event_id }. */
  async sendEvent(event) {
    const body = RecforgeClient.eventBody(event);
    const url = this.eventsUrl || `${this.baseUrl}/events`;
    const result = await this.request("POST", url, { body, write: true });
    return { ...result, event_id: body.event_id };
  }

  /** Record events in one transaction: POST /events/batch (or `eventsUrl` + "/batch"). */
  async sendEvents(events) {
    const body = { events: events.map((e) => RecforgeClient.eventBody(e)) };
    const url = this.eventsUrl ? `${this.eventsUrl}/batch` : `${this.baseUrl}/events/batch`;
    const result = await this.request("POST", url, { body, write: true });
    return { ...result, event_ids: body.events.map((e) => e.event_id) };
  }

  /**
   * Queue an event with navigator.sendBeacon (survives leaving the page; no answer, no
   * headers, so it only suits an `eventsUrl` backend that holds the key). Returns whether
   * the browser queued it.
   */
  beacon(event) {
    if (!this.eventsUrl) throw new RecforgeError("beacon() needs eventsUrl: a beacon cannot carry an API key");
    const body = RecforgeClient.eventBody(event);
    const blob = new Blob([JSON.stringify(body)], { type: "application/json" });
    return navigator.sendBeacon(this.eventsUrl, blob);
  }
}
