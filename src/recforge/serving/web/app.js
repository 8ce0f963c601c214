// recforge web page: plain JavaScript, no build step, talks to the REST API of this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, titles: new Map(), lastRecs: [] };

function setStatus(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.className = error ? "error" : "";
}

async function api(path, options = {}) {
  // the key field's key goes with every request: user data may need a read key
  const key = $("api-key") ? $("api-key").value.trim() : "";
  const headers = { ...(options.headers || {}) };
  if (key && !headers["X-API-Key"]) headers["X-API-Key"] = key;
  const resp = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : resp.statusText;
    throw new Error(`${resp.status}: ${detail}`);
  }
  return body;
}

function label(it) {
  return it.title || (it.attributes && it.attributes.title) || state.titles.get(it.item) || `item ${it.item}`;
}

function renderList(el, items, opts = {}) {
  el.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = opts.empty || "nothing yet";
    el.append(li);
    return;
  }
  for (const it of items) {
    if (it.title) state.titles.set(it.item, it.title);
    const li = document.createElement("li");
    li.dataset.item = it.item;
    if (opts.previous && !opts.previous.includes(it.item)) li.classList.add("new");
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = opts.ranked === false ? "•" : String(it.rank);
    const body = document.createElement("div");
    body.className = "body";
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = label(it);
    title.title = "show similar items";
    title.addEventListener("click", () => showSimilar(it.item, label(it)));
    body.append(title);
    const meta = document.createElement("div");
    meta.className = "meta";
    const genres = it.attributes && it.attributes.genres ? String(it.attributes.genres).replaceAll("|", ", ") : "";
    meta.textContent = [genres, it.score != null && opts.ranked !== false ? `score ${it.score.toFixed(3)}` : ""].filter(Boolean).join(" · ");
    body.append(meta);
    if (it.explanation && it.explanation.length) {
      const why = document.createElement("div");
      why.className = "why";
      const names = it.explanation.map((c) => state.titles.get(c.id) || c.id);
      why.textContent = "because of " + names.join(", ");
      body.append(why);
    }
    li.append(rank, body);
    if (opts.actions) {
      const act = document.createElement("div");
      act.className = "actions";
      const btn = document.createElement("button");
      btn.className = "secondary watch";
      btn.textContent = "Watched";
      btn.title = "send a view event for this user";
      btn.addEventListener("click", () => sendEvent(it.item));
      act.append(btn);
      li.append(act);
    }
    el.append(li);
  }
}

async function loadModel() {
  try {
    const info = await api("/model");
    $("model-badge").textContent = `${info.model} · ${info.version}`;
  } catch (e) {
    $("model-badge").textContent = "no model loaded";
  }
}

async function loadUser(user) {
  if (!user) return;
  state.user = user;
  $("user-input").value = user;
  setStatus(`loading ${user}…`);
  try {
    const k = Math.max(1, Math.min(100, Number($("k-input").value) || 10));
    const [hist, recs] = await Promise.all([
      api(`/users/${encodeURIComponent(user)}/history?limit=30`),
      api(`/recommendations/${encodeURIComponent(user)}?k=${k}&details=true&explain=true`),
    ]);
    renderList($("history"), hist.items, { ranked: false, empty: "no history: a new user" });
    $("history-count").textContent = hist.known ? `(${hist.items.length} shown)` : "(unknown to the model)";
    const previous = state.lastRecs;
    renderList($("recs"), recs.items, { actions: true, previous: state.user === user && previous.length ? previous : null });
    state.lastRecs = recs.items.map((it) => it.item);
    $("reason").textContent = `${recs.reason} · model ${recs.model_version}`;
    setStatus(`${recs.items.length} recommendations for ${user}`);
  } catch (e) {
    setStatus(`could not load ${user}: ${e.message}`, true);
  }
}

async function showSimilar(item, title) {
  $("similar-title").textContent = title;
  try {
    const res = await api(`/items/${encodeURIComponent(item)}/similar?k=8&details=true`);
    renderList($("similar"), res.items, {});
  } catch (e) {
    renderList($("similar"), [], { empty: e.message.startsWith("501") ? "this model has no item similarity" : e.message });
  }
}

async function sendEvent(item) {
  const key = $("api-key").value.trim();
  if (!state.user) { setStatus("pick a user first", true); return; }
  const headers = { "Content-Type": "application/json" };
  if (key) headers["X-API-Key"] = key;
  const event = { event_id: crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`,
                  user: state.user, item: item, type: "view" };
  try {
    await api("/events", { method: "POST", headers, body: JSON.stringify(event) });
    await loadUser(state.user);
    setStatus(`recorded: ${state.user} watched ${state.titles.get(item) || item}; recommendations updated`);
  } catch (e) {
    setStatus(e.message.startsWith("401") ? "an API key with write access is needed (field at the top right)" : `event failed: ${e.message}`, true);
  }
}

async function suggestUsers() {
  const q = $("user-input").value.trim();
  try {
    const users = await api(`/users?q=${encodeURIComponent(q)}&limit=20`);
    const list = $("user-list");
    list.replaceChildren(...users.map((u) => { const o = document.createElement("option"); o.value = u; return o; }));
    return users;
  } catch (e) { return []; }
}

async function randomUser() {
  const users = await api(`/users?q=&limit=100`).catch(() => []);
  if (users.length) loadUser(users[Math.floor(Math.random() * users.length)]);
}

async function loadModels() {
  const tbody = document.querySelector("#versions tbody");
  tbody.replaceChildren();
  try {
    const versions = await api("/models");
    for (const v of versions) {
      const tr = document.createElement("tr");
      if (v.active) tr.className = "active";
      const metrics = Object.entries(v.metrics).map(([k, x]) => `${k}=${typeof x === "number" ? x.toFixed(4) : x}`).join(", ");
      const cells = [v.version + (v.active ? " (active)" : ""), v.model, v.parent || "—",
                     new Date(v.created * 1000).toISOString().replace("T", " ").slice(0, 19), metrics || "—"];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.append(td); }
      const td = document.createElement("td");
      if (v.report) { const a = document.createElement("a"); a.href = `/models/${v.version}/report`; a.textContent = "report"; td.append(a); }
      else td.textContent = "—";
      tr.append(td);
      tbody.append(tr);
    }
    $("models-status").textContent = `${versions.length} version(s)`;
  } catch (e) {
    $("models-status").textContent = e.message.startsWith("404") ? "this server runs a single model (no registry)" : e.message;
  }
}

function showView(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  $("view-explore").hidden = name !== "explore";
  $("view-models").hidden = name !== "models";
  if (name === "models") loadModels();
}

function init() {
  const saved = sessionStorage.getItem("recforge-api-key");
  if (saved) $("api-key").value = saved;
  $("api-key").addEventListener("input", (e) => sessionStorage.setItem("recforge-api-key", e.target.value));
  $("load-user").addEventListener("click", () => loadUser($("user-input").value.trim()));
  $("user-input").addEventListener("keydown", (e) => { if (e.key === "Enter") loadUser(e.target.value.trim()); });
  $("user-input").addEventListener("input", suggestUsers);
  $("random-user").addEventListener("click", randomUser);
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  loadModel();
  suggestUsers();
  const params = new URLSearchParams(location.search);
  if (params.get("user")) loadUser(params.get("user"));
}

init();
