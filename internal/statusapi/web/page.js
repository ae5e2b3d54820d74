// eddy's web page: polls the node's JSON (the same a script would read)
// and redraws. No framework, no build step.
"use strict";

const POLL_MS = 1000;        // /status, /checkpoints, /deadletters
const STATE_MS = 2000;       // /state (the result table)
const PIPELINE_MS = 30000;   // /pipeline
const SAMPLES = 300;         // the chart's ring: 5 minutes at POLL_MS
const RESULT_ROWS = 50;      // result rows shown
const TIMEOUT_MS = 10000;    // a request not answered by then fails
const $ = (id) => document.getElementById(id);

// fetchText returns {ok, status, text}; a network failure or a timeout is
// status 0.
async function fetchText(path) {
  try {
    const r = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (r.status === 401 && (r.headers.get("WWW-Authenticate") || "").startsWith("Bearer")) {
      // The node asks for its token and the session is over (logged
      // out, or a new token): back to its login form.
      location.assign("/login");
    }
    return { ok: r.ok, status: r.status, text: await r.text() };
  } catch (e) {
    return { ok: false, status: 0, text: "the node does not answer (" + e.message + ")" };
  }
}

// fetchJSON returns the parsed body, or shows the answer's text in the
// notice element noticeId and returns null.
async function fetchJSON(path, noticeId) {
  const r = await fetchText(path);
  if (!r.ok) {
    notice(noticeId, path + ": " + (r.status ? r.status + " " : "") + r.text.trim());
    return null;
  }
  notice(noticeId, "");
  return JSON.parse(r.text);
}

function notice(id, text) {
  const el = $(id);
  el.textContent = text;
  el.hidden = !text;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}

function fill(tableId, rows, empty) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...rows);
  if (!rows.length && empty) {
    const td = el("td", empty, "muted");
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    body.append(row([td]));
  }
}

const num = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"));
const td = (text, cls) => el("td", text, cls);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function rate(n) {
  if (n === null || !isFinite(n)) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Math.round(n).toLocaleString("en-US");
}

const clock = (t) => new Date(t).toLocaleTimeString("en-GB");

// nodesOf turns either /status shape (one node's actors.Status, or a
// cluster's {cluster, nodes: [{id, address, status, error}]}) into a list
// of {name, address, status, error}.
function nodesOf(st) {
  if (Array.isArray(st.nodes)) {
    return st.nodes.map((n) => ({
      name: (n.status && n.status.node) || n.id, address: n.http || n.address,
      status: n.status, error: n.error, self: n.self,
    }));
  }
  return [{ name: st.node || "this node", address: location.host, status: st, self: true }];
}

// The chart's ring of samples: {t, read, kept, failed} totals.
const samples = [];

// Per-partition positions of the previous poll, for rates.
let lastPositions = new Map();

// positionCount reads a record count from a position where the source
// gives one (Kafka: "offset N"; gen: "next record N"); other sources'
// positions are not counts, so their partitions show no rate.
function positionCount(pos) {
  const m = /^(?:offset (\d+)|.* next record (\d+))$/.exec(pos || "");
  return m ? Number(m[1] || m[2]) : null;
}

function partitionState(p) {
  if (p.restoring) {
    const of = p.to_restore ? " " + num(p.restored) + " of " + num(p.to_restore) : "";
    return ["restoring" + of, "state-wait"];
  }
  if (p.ended) return ["ended", "state-wait"];
  if (p.caught_up) return ["caught up", "state-ok"];
  return ["reading", "state-ok"];
}

function showStatus(st, now) {
  const nodes = nodesOf(st);
  const up = nodes.filter((n) => n.status).map((n) => n.status);
  const sum = (f) => up.reduce((a, s) => a + (s[f] || 0), 0);
  const totals = { t: now, read: sum("records_read"), kept: sum("records_kept"), failed: sum("records_failed") };
  $("pipeline-name").textContent = st.pipeline || "";
  document.title = "eddy · " + (st.pipeline || "");
  $("records-read").textContent = num(totals.read);
  $("records-kept").textContent = num(totals.kept);
  $("records-failed").textContent = num(totals.failed);
  $("records-late").textContent = num(sum("records_late"));
  $("state-bytes").textContent = bytes(sum("state_bytes"));
  samples.push(totals);
  if (samples.length > SAMPLES) samples.shift();
  const r = ratesOf(samples.length - 1);
  $("rate").textContent = r ? rate(r.read) : "–";
  const self = nodes.find((n) => n.self && n.status);
  showScript(self && self.status.script);
  showNodes(nodes);
  showPartitions(nodes, now);
  drawChart();
}

// showScript says which version of the script this node runs and how
// its reloads went (eddy run --watch or SIGHUP).
function showScript(s) {
  const p = $("script-version");
  p.hidden = !s;
  if (!s) return;
  const parts = [
    "script version " + s.hash.slice(0, 12) + ", loaded " + clock(s.loaded_at),
    num(s.reloads) + (s.reloads === 1 ? " reload, " : " reloads, ") + num(s.reloads_refused) + " refused",
  ];
  if (s.pending) parts.push("version " + s.pending.slice(0, 12) + " takes over at the next checkpoint");
  p.replaceChildren(parts.join(" · "));
  if (s.last_refused) p.append(" · ", el("span", "last refused: " + s.last_refused, "state-bad"));
}

function showNodes(nodes) {
  fill("nodes", nodes.map((n) => {
    const s = n.status;
    if (!s) return row([n.name, n.address || "", td(n.error || "no answer", "state-bad"), "", ""]);
    const cp = s.last_checkpoint ? "#" + s.last_checkpoint.id + " at " + clock(s.last_checkpoint.time) : "none yet";
    return row([n.name + (n.self ? " (this one)" : ""), n.address || "", td(num(s.records_read), "num"), cp, s.watermark || "–"]);
  }));
}

function showPartitions(nodes, now) {
  const rows = [];
  const positions = new Map();
  for (const n of nodes) {
    for (const p of (n.status && n.status.partitions) || []) {
      const key = n.name + "/" + p.id;
      const count = positionCount(p.position);
      const prev = lastPositions.get(key);
      positions.set(key, { t: now, count });
      let r = null;
      if (count !== null && prev && prev.count !== null && now > prev.t) r = ((count - prev.count) * 1000) / (now - prev.t);
      const [state, cls] = partitionState(p);
      rows.push(row([n.name, p.id, td(p.position || "–"), td(p.lag === undefined ? "–" : num(p.lag), "num"), td(rate(r), "num"), td(state, cls)]));
    }
  }
  lastPositions = positions;
  fill("partitions", rows, "no partitions assigned yet");
}

// ratesOf is the per-second rates between sample i and the one before.
function ratesOf(i) {
  if (i < 1) return null;
  const a = samples[i - 1], b = samples[i];
  const dt = (b.t - a.t) / 1000;
  if (dt <= 0) return null;
  return { t: b.t, read: (b.read - a.read) / dt, kept: (b.kept - a.kept) / dt, failed: (b.failed - a.failed) / dt };
}

function drawChart() {
  const svg = $("chart");
  const w = svg.clientWidth || 800, h = svg.clientHeight || 160;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const rates = [];
  for (let i = 1; i < samples.length; i++) rates.push(ratesOf(i));
  const pts = rates.filter(Boolean);
  const top = Math.max(1, ...pts.map((p) => Math.max(p.read, p.kept, p.failed)));
  // The chart spans the samples kept, at least a minute, at most SAMPLES.
  const t0 = samples.length ? samples[0].t : 0, t1 = samples.length ? samples[samples.length - 1].t : 0;
  const span = Math.max(60000, t1 - t0);
  $("chart-span").textContent = span >= 120000 ? Math.round(span / 60000) + " minutes" : Math.round(span / 1000) + " seconds";
  const left = 48, pad = 8;
  const x = (t) => left + ((w - left - pad) * (t - (t1 - span))) / span;
  const y = (v) => h - pad - ((h - 2 * pad) * v) / top;
  const ns = "http://www.w3.org/2000/svg";
  const parts = [];
  for (const f of [0, 0.5, 1]) {
    const line = document.createElementNS(ns, "line");
    Object.entries({ x1: left, x2: w - pad, y1: y(top * f), y2: y(top * f), class: "grid" }).forEach(([k, v]) => line.setAttribute(k, v));
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 4);
    label.setAttribute("y", y(top * f) + 4);
    label.textContent = rate(top * f);
    parts.push(line, label);
  }
  for (const series of ["read", "kept", "failed"]) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", series);
    line.setAttribute("points", pts.map((p) => x(p.t).toFixed(1) + "," + y(Math.max(0, p[series])).toFixed(1)).join(" "));
    parts.push(line);
  }
  svg.replaceChildren(...parts);
}

function showPipeline(p) {
  const rows = [["script", p.script], ["source", p.source]];
  for (const [name, uri] of Object.entries(p.sinks || {}).sort()) rows.push(["sink " + name, uri]);
  for (const s of p.settings || []) rows.push([s.name, s.value]);
  $("pipeline").replaceChildren(...rows.map(([k, v]) => row([el("th", k), td(v)])));
}

function showCheckpoints(cps) {
  fill("checkpoints", cps.slice(0, 10).map((c) => row([
    td(c.id, "num"), clock(c.time), td((c.duration_ns / 1e6).toFixed(1) + " ms", "num"), td(num(c.keys), "num"), td(num(c.changed), "num"),
  ])), "none yet");
}

// showDeadLetters shows each failed record's reason and, on one line,
// the record (the whole dead letter in the cell's tooltip).
function showDeadLetters(dls) {
  fill("deadletters", dls.slice(0, 10).map((d) => {
    const dead = d.row || {};
    const record = dead.record !== undefined ? dead.record : JSON.stringify(dead);
    const cell = td(null);
    cell.append(el("code", typeof record === "string" ? record : JSON.stringify(record)));
    cell.title = JSON.stringify(dead, null, 2);
    return row([clock(d.time), td(dead.error || "(no reason given)", "state-bad"), cell]);
  }), "none: every record so far was kept or filtered out");
}

// The result table: /state is JSON lines, one a row, already ordered and
// limited as the pipeline's complete emit would be.
let lastResult = new Map();

function showResults(text) {
  const rows = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const shown = rows.slice(0, RESULT_ROWS);
  $("results-note").textContent = rows.length + " rows" + (rows.length > RESULT_ROWS ? ", the first " + RESULT_ROWS + " shown" : "") + " · as of " + clock(Date.now());
  $("results").tHead.replaceChildren(row(cols.map((c) => el("th", c))));
  const seen = new Map();
  $("results").tBodies[0].replaceChildren(...shown.map((r) => {
    // A row is known by its text columns (its key, its window); a number
    // that changed since the last poll flashes.
    const id = cols.filter((c) => typeof r[c] !== "number").map((c) => r[c]).join("\u0000");
    const before = lastResult.get(id);
    seen.set(id, r);
    return row(cols.map((c) => {
      const v = r[c];
      if (typeof v !== "number") return td(v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : v);
      return td(num(v), before && before[c] !== v ? "num changed" : "num");
    }));
  }));
  lastResult = seen;
}

async function pollStatus() {
  const now = Date.now();
  const st = await fetchJSON("/status", "notice");
  if (st) {
    showStatus(st, now);
    $("updated").textContent = "updated " + clock(now);
  }
  const cps = await fetchJSON("/checkpoints", "checkpoints-error");
  if (cps) showCheckpoints(cps);
  const dls = await fetchJSON("/deadletters", "deadletters-error");
  if (dls) showDeadLetters(dls);
}

async function pollState() {
  const r = await fetchText("/state");
  if (r.status === 404) {
    notice("results-error", r.text.trim());
    $("results-note").textContent = "";
    return;
  }
  if (!r.ok) {
    notice("results-error", "/state: " + (r.status ? r.status + " " : "") + r.text.trim());
    return;
  }
  notice("results-error", "");
  showResults(r.text);
}

async function pollPipeline() {
  const p = await fetchJSON("/pipeline", "pipeline-error");
  if (p) showPipeline(p);
}

// every runs f now and then again ms after the previous run ends, so a
// slow node is never asked twice at once; a run that takes long (a big
// result table) spaces the next ones out, to cost the node at most a
// tenth of its time.
function every(ms, f) {
  const tick = async () => {
    const start = Date.now();
    try { await f(); } catch (e) { notice("notice", String(e)); }
    setTimeout(tick, Math.max(ms, 10 * (Date.now() - start)));
  };
  tick();
}

every(POLL_MS, pollStatus);
every(STATE_MS, pollState);
every(PIPELINE_MS, pollPipeline);
