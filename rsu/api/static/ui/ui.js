// rsu web view: reads v1/ui/state every few seconds and v1/ui/events (server-sent events) for the live
// signal-group states. Plain script, no framework, no build step; everything comes from the daemon.
"use strict";

const REFRESH_MS = 2000;
const STATES = ["state-red", "state-amber", "state-green", "state-dark", "state-unknown"];
const PRECEDENCE = ["green", "amber", "red", "dark", "unknown"]; // a lane with several groups: most permissive
const spat = new Map(); // intersection key -> {groups: {group: {state, class}}, source, at}
const drawn = new Map(); // intersection key -> "entry/generation" of the drawing on the page

function cell(row, value, cls) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "" :
    (typeof value === "object" ? JSON.stringify(value) : String(value));
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, rows, columns, rowClass) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const tr = body.insertRow();
    const td = cell(tr, "none", "empty");
    td.colSpan = columns.length || 1;
    return;
  }
  for (const r of rows) {
    const tr = body.insertRow();
    if (rowClass) tr.className = rowClass(r) || "";
    for (const c of columns) cell(tr, typeof c === "function" ? c(r) : r[c]);
  }
}

function fillGeneric(tableId, rows) { // objects of any shape: one column per key
  const columns = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
  const head = document.querySelector(`#${tableId} thead`);
  head.replaceChildren();
  const tr = head.insertRow();
  for (const c of columns) { const th = document.createElement("th"); th.textContent = c; tr.appendChild(th); }
  fill(tableId, rows, columns);
}

function setState(el, cls) {
  el.classList.remove(...STATES);
  el.classList.add(`state-${cls}`);
  el.dataset.state = cls;
}

function applySpat(key) {
  const entry = spat.get(key);
  const box = document.querySelector(`.intersection[data-key="${CSS.escape(key)}"]`);
  if (!entry || !box) return;
  const groups = entry.groups;
  const classOf = (g) => (groups[g] ? groups[g].class : "unknown");
  for (const el of box.querySelectorAll("[data-signal-group]")) setState(el, classOf(el.dataset.signalGroup));
  for (const lane of box.querySelectorAll("g.lane")) {
    const own = (lane.dataset.signalGroups || "").split(/[\s,]+/).filter(Boolean);
    if (!own.length) continue;
    const cls = PRECEDENCE.find((p) => own.some((g) => classOf(g) === p)) || "unknown";
    setState(lane, cls);
    for (const stop of box.querySelectorAll(`.stop-line[data-lane="${lane.dataset.lane}"]`)) setState(stop, cls);
  }
}

function renderSignalGroups() {
  const rows = [];
  for (const [key, entry] of [...spat.entries()].sort()) {
    for (const [group, g] of Object.entries(entry.groups)) {
      rows.push({intersection: key, group, state: g.state, cls: g.class, source: entry.source, at: entry.at});
    }
  }
  const body = document.querySelector("#signal-groups tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = body.insertRow();
    tr.dataset.intersection = r.intersection;
    tr.dataset.group = r.group;
    cell(tr, r.intersection); cell(tr, r.group); cell(tr, r.state, `state-${r.cls}`);
    cell(tr, r.source); cell(tr, r.at);
  }
}

function onSpat(event) {
  const key = event.intersection;
  const known = spat.get(key);
  // what this RSU sends is the reference for its own intersections; received states fill in the others
  if (event.source === "received" && known && known.source === "sent") return;
  spat.set(key, {groups: event.groups, source: event.source, at: event.at || ""});
  applySpat(key);
  renderSignalGroups();
}

function renderIntersections(list) {
  const box = document.getElementById("intersections");
  const wanted = new Set();
  for (const x of list) {
    if (!x.key) continue;
    wanted.add(x.key);
    const mark = `${x.entry}/${x.generation}`;
    if (drawn.get(x.key) === mark) continue;
    let div = box.querySelector(`.intersection[data-key="${CSS.escape(x.key)}"]`);
    if (!div) {
      div = document.createElement("div");
      div.className = "intersection";
      div.dataset.key = x.key;
      box.appendChild(div);
    }
    div.dataset.lanes = x.lanes;
    const title = document.createElement("h3");
    title.textContent = `${x.key}${x.name ? " " + x.name : ""} (revision ${x.revision}, ${x.lanes} lanes, entry ${x.entry})`;
    const drawing = document.createElement("div");
    drawing.className = "drawing";
    drawing.innerHTML = x.svg; // the daemon's own SVG (rsu.maps.svg), text escaped there
    div.replaceChildren(title, drawing);
    drawn.set(x.key, mark);
    applySpat(x.key);
  }
  for (const x of list) if (!x.key && x.error) wanted.add(`error:${x.entry}`);
  for (const div of [...box.querySelectorAll(".intersection")]) {
    if (!wanted.has(div.dataset.key)) { drawn.delete(div.dataset.key); div.remove(); }
  }
  for (const x of list) {
    if (x.key || !x.error || box.querySelector(`[data-key="error:${CSS.escape(x.entry)}"]`)) continue;
    const div = document.createElement("div");
    div.className = "intersection";
    div.dataset.key = `error:${x.entry}`;
    div.innerHTML = "<p class=\"error\"></p>";
    div.firstChild.textContent = `MAPEM ${x.entry}: ${x.error}`;
    box.appendChild(div);
  }
  let empty = box.querySelector(".empty");
  if (!box.querySelector(".intersection") && !empty) {
    empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "no MAPEM on the air";
    box.appendChild(empty);
  } else if (box.querySelector(".intersection") && empty) {
    empty.remove();
  }
}

function fillRows(tableId, rows) { // [{field, label, value, warning}] as label/value rows, as ui_view gives them
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  for (const r of rows) {
    const tr = body.insertRow();
    tr.dataset.field = r.field;
    if (r.warning) tr.className = "warning";
    const th = document.createElement("th");
    th.textContent = r.label;
    tr.appendChild(th);
    cell(tr, r.value);
  }
}

function renderClock(clock) {
  if (!clock.known) return;
  fillRows("clock-health", clock.rows);
  const gnss = clock.gnss || [];
  document.getElementById("gnss-title").hidden = !clock.gnss;
  document.getElementById("gnss-health").hidden = !clock.gnss;
  fillRows("gnss-health", gnss);
}

function render(state) {
  document.getElementById("station").textContent = `station ${state.station_id} (${state.version}, security ${state.security})`;
  document.getElementById("clock").textContent = state.now || "";
  const warnings = document.getElementById("warnings");
  const banners = state.expiry.warnings.map((w) => {
    const li = document.createElement("li");
    li.className = "expiry-warning";
    li.textContent = `Expires soon (under ${state.expiry.warn_hours} h): ${w}`;
    return li;
  });
  if (state.clock && state.clock.warning) {
    const li = document.createElement("li");
    li.className = "clock-warning";
    li.textContent = state.clock.warning;
    banners.unshift(li);
  }
  warnings.replaceChildren(...banners);
  if (state.clock) renderClock(state.clock);
  renderIntersections(state.intersections);
  for (const s of state.spat) if (!spat.has(s.intersection)) onSpat(s);
  fill("store", state.store, ["service", "id", "message", "state", "next_send", "last_send", "count",
    (r) => (r.transports || []).join(", ")]);
  for (const tr of document.querySelectorAll("#store tbody tr")) {
    const id = tr.cells[1] && tr.cells[1].textContent;
    if (id) tr.dataset.id = id;
  }
  fill("expiry", state.expiry.items, ["what", "name",
    (r) => (r.hours_left === null ? "?" : r.hours_left.toFixed(2))], (r) => (r.warning ? "warning" : ""));
  fill("transports", state.transports, ["name", "kind", "state", "detail", "sent_per_s"],
    (r) => (r.state === "disconnected" ? "warning" : ""));
  fill("drops", state.drops, ["transport", "reason", "total", "per_s"]);
  const zones = [];
  for (const m of state.ivim) {
    for (const z of m.zones) zones.push({entry: m.entry, state: m.state, ...z, used_as: z.used_as.join(", ")});
    if (!m.zones.length) zones.push({entry: m.entry, state: m.state, zone_id: "(no GLC zone)"});
  }
  fill("ivim", zones, ["entry", "state", "zone_id", "kind", "latitude", "longitude", "nodes", "used_as"]);
  fillGeneric("tlc-requests", state.tlc.requests);
  fill("tlc-messages", state.tlc.messages, ["id", "message", "state", "next_transmission"]);
}

let timer = null;
let source = null;

function showLogin(message) {
  if (timer !== null) { clearInterval(timer); timer = null; }
  if (source !== null) { source.close(); source = null; }
  const live = document.getElementById("live");
  live.textContent = "events: not logged in";
  live.className = "off";
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  const problem = document.getElementById("login-error");
  problem.textContent = message || "";
  problem.hidden = !message;
}

async function refresh() {
  const problem = document.getElementById("fetch-error");
  try {
    const resp = await fetch("v1/ui/state", {cache: "no-store", credentials: "same-origin"});
    if (resp.status === 401) { showLogin("the session ended: log in again"); return; }
    if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
    render(await resp.json());
    problem.hidden = true;
    document.body.dataset.loaded = "1";
  } catch (e) {
    problem.textContent = `state: ${e.message}`;
    problem.hidden = false;
  }
}

function listen() {
  const live = document.getElementById("live");
  source = new EventSource("v1/ui/events", {withCredentials: true});
  source.addEventListener("open", () => { live.textContent = "events: live"; live.className = "on"; });
  source.addEventListener("error", () => { live.textContent = "events: reconnecting"; live.className = "off"; });
  source.addEventListener("spat", (e) => onSpat(JSON.parse(e.data)));
}

function start(who) {
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = who.kind !== "session";
  refresh();
  listen();
  timer = setInterval(refresh, REFRESH_MS);
}

// who this browser is, counting nothing: a client certificate or a session cookie, else the login form
// (a request without credentials would count as a failed authentication for the lockout)
async function begin() {
  try {
    const resp = await fetch("ui/session", {cache: "no-store", credentials: "same-origin"});
    const who = await resp.json();
    if (who.authenticated) start(who);
    else showLogin(who.login ? "" : "this API takes client certificates only: open this page with one");
  } catch (e) {
    showLogin(`cannot reach the RSU: ${e.message}`);
  }
}

document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const field = document.getElementById("login-token");
  const body = new URLSearchParams({token: field.value});
  field.value = "";
  try {
    const resp = await fetch("ui/login", {method: "POST", body, credentials: "same-origin", cache: "no-store"});
    const answer = await resp.json();
    if (!resp.ok) { showLogin(answer.error ? answer.error.reason : `${resp.status}`); return; }
    start({kind: "session"});
  } catch (err) {
    showLogin(`login: ${err.message}`);
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  await fetch("ui/logout", {method: "POST", credentials: "same-origin", cache: "no-store"});
  showLogin("");
});

begin();
