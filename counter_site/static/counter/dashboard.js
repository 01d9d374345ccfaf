// The dashboard: polls GET /cluster, GET /history and GET /top, draws plain SVG charts and
// bars, and drives the lookup and post forms through the public API.
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

// --- requests -------------------------------------------------------------------------

const tokens = {
  read: sessionStorage.getItem("counter-read-token") || "",
  write: sessionStorage.getItem("counter-write-token") || "",
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

// A fetch that sends the token the route needs and turns an error reply into an ApiError.
async function api(path, options = {}, kind = "read") {
  const headers = new Headers(options.headers || {});
  headers.set("Accept", "application/json");
  if (tokens[kind]) headers.set("Authorization", `Bearer ${tokens[kind]}`);
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (response.status === 401) askForToken(kind);
  if (!response.ok) throw new ApiError(response.status, body);
  return { body, response };
}

function askForToken(kind) {
  $("tokens").hidden = false;
  $(`${kind}-token-row`).hidden = false;
}

function useTokens(event) {
  if (event) event.preventDefault();
  for (const kind of ["read", "write"]) {
    tokens[kind] = $(`${kind}-token`).value.trim();
    sessionStorage.setItem(`counter-${kind}-token`, tokens[kind]);
  }
  refresh();
}

for (const kind of ["read", "write"]) {
  const input = $(`${kind}-token`);
  input.value = tokens[kind];
  input.addEventListener("change", () => useTokens());
}
$("tokens").addEventListener("submit", useTokens);

// --- formatting -----------------------------------------------------------------------

const integer = new Intl.NumberFormat("en-US");

function bytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

function rate(value) {
  if (value >= 1000) return integer.format(Math.round(value));
  return value >= 10 ? value.toFixed(0) : value.toFixed(1);
}

// A short label for a chart's axis: 0.5, 12, 4.5k, 1.2M.
function compact(value) {
  const scales = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [scale, suffix] of scales) {
    if (value >= scale) return `${Number((value / scale).toFixed(1))}${suffix}`;
  }
  return String(Number(value.toFixed(value < 10 ? 1 : 0)));
}

// The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value``: a round top for an axis.
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function ago(unixSeconds) {
  if (!unixSeconds) return "never";
  const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function cell(text, field, value) {
  const td = document.createElement("td");
  td.textContent = text;
  td.dataset.field = field;
  if (value !== undefined && value !== null) td.dataset.value = String(value);
  return td;
}

// --- the node and its members ---------------------------------------------------------

function showNode(node) {
  $("node-id").textContent = node.node_id;
  const state = $("node-state");
  if (node.clash) {
    state.textContent = "refusing writes: node id clash";
    state.className = "badge bad";
  } else if (!node.ready) {
    state.textContent = "recovering";
    state.className = "badge warn";
  } else if (node.pending && node.pending.reason) {
    state.textContent = "serving, slot not yet proven";
    state.className = "badge warn";
  } else {
    state.textContent = "serving";
    state.className = "badge good";
  }
  const figures = {
    keys: node.keys,
    slots: node.slots,
    sequence: node.sequence,
    pending: node.pending ? node.pending.keys : 0,
    idempotency: node.idempotency ? node.idempotency.keys : 0,
  };
  for (const [name, value] of Object.entries(figures)) {
    const element = $(`figure-${name}`);
    element.textContent = integer.format(value);
    element.dataset.value = String(value);
  }
}

// This node first, then every member and seed as runsync last saw it.
function showMembers(node, peers) {
  const body = $("members").tBodies[0];
  const self = document.createElement("tr");
  self.className = "self";
  self.dataset.nodeId = String(node.node_id);
  self.dataset.state = "self";
  self.append(
    cell(`${node.node_id} (this node)`, "node_id", node.node_id),
    cell(window.location.origin, "url"),
    cell(node.ready ? "serving" : "recovering", "state", node.ready ? "serving" : "recovering"),
    cell("self", "mode", "self"),
    cell("–", "lag"),
    cell("–", "last_success"),
    cell("", "bytes_sent"),
    cell("", "bytes_received"),
    cell("", "errors"),
  );
  const rows = peers.map((peer) => {
    const row = document.createElement("tr");
    row.dataset.nodeId = peer.node_id === null ? "" : String(peer.node_id);
    row.dataset.state = peer.state;
    const state = cell(peer.state, "state", peer.state);
    state.className = `state ${peer.state}`;
    const lastSync = cell(ago(peer.last_success), "last_success", peer.last_success);
    if (peer.last_success) lastSync.title = new Date(peer.last_success * 1000).toISOString();
    if (peer.last_error && peer.state !== "up") lastSync.title = peer.last_error;
    row.append(
      cell(peer.node_id === null ? "?" : peer.node_id, "node_id", peer.node_id),
      cell(peer.url, "url", peer.url),
      state,
      cell(peer.mode, "mode", peer.mode),
      cell(peer.lag === null ? "–" : integer.format(peer.lag), "lag", peer.lag),
      lastSync,
      cell(bytes(peer.bytes_sent), "bytes_sent", peer.bytes_sent),
      cell(bytes(peer.bytes_received), "bytes_received", peer.bytes_received),
      cell(integer.format(peer.errors), "errors", peer.errors),
    );
    return row;
  });
  body.replaceChildren(self, ...rows);
  $("members-empty").hidden = peers.length > 0;
}

// --- top keywords ---------------------------------------------------------------------

// The keywords counted most (GET /top), as bars as long as their counts, the highest full width.
async function showTop() {
  const prefix = $("top-prefix").value.trim();
  const query = new URLSearchParams({ n: $("top-n").value });
  if (prefix) query.set("prefix", prefix);
  const problem = $("top-error");
  try {
    const { body } = await api(`/top?${query}`);
    problem.hidden = true;
    const highest = body.length ? body[0].count : 1;
    $("top-list").replaceChildren(
      ...body.map((item) => {
        const entry = document.createElement("li");
        entry.dataset.count = String(item.count);
        const name = document.createElement("span");
        name.className = "name";
        if (item.key === null) {
          // Merged from counter-app, which sends only hashes: no node that knows the text has synced yet.
          entry.dataset.hash = item.hash;
          name.textContent = item.hash;
          name.classList.add("muted");
          name.title = "The text of this keyword is not known yet (a key from counter-app)";
        } else {
          entry.dataset.keyword = item.key;
          name.textContent = item.key;
          name.title = item.key;
        }
        const track = document.createElement("span");
        track.className = "track";
        const bar = document.createElement("span");
        bar.className = "bar";
        bar.style.width = `${((100 * item.count) / highest).toFixed(1)}%`;
        track.append(bar);
        const count = document.createElement("strong");
        count.textContent = integer.format(item.count);
        entry.append(name, track, count);
        return entry;
      }),
    );
    const empty = $("top-empty");
    empty.textContent = prefix ? `No keyword counted starts with “${prefix}”.` : "No keyword counted yet.";
    empty.hidden = body.length > 0;
  } catch (error) {
    problem.textContent = error instanceof ApiError ? error.message : "The node does not answer; retrying.";
    problem.hidden = false;
  }
}

let topTyping = null;
$("top-prefix").addEventListener("input", () => {
  clearTimeout(topTyping);
  topTyping = setTimeout(showTop, 250);
});
$("top-n").addEventListener("change", showTop);
$("top-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showTop();
});

// --- charts (plain SVG) ---------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 320, height: 110, left: 44, right: 6, top: 8, bottom: 18 };

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// Draw ``points`` (objects with time and ``field``) as a line over the history's time span.
function drawChart(id, points, field, format, axisFormat = compact) {
  const svg = $(id);
  const values = points.filter((point) => point[field] !== null);
  const { width, height, left, right, top, bottom } = CHART;
  const children = [];
  const latest = values.length ? values[values.length - 1][field] : null;
  $(`${id}-latest`).textContent = latest === null ? "" : format(latest);
  svg.dataset.latest = latest === null ? "" : String(latest);
  svg.dataset.points = String(values.length);
  svg.dataset.max = values.length ? String(Math.max(...values.map((point) => point[field]))) : "";
  if (values.length === 0) {
    children.push(svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, "no samples yet"));
    svg.replaceChildren(...children);
    return;
  }
  const start = points[0].time;
  const end = Math.max(points[points.length - 1].time, start + 1);
  const high = Math.max(...values.map((point) => point[field]));
  const ceiling = niceCeiling(high);
  const x = (time) => left + ((time - start) / (end - start)) * (width - left - right);
  const y = (value) => top + (1 - value / ceiling) * (height - top - bottom);
  for (const fraction of [0, 0.5, 1]) {
    const level = y(ceiling * fraction);
    children.push(svgElement("line", { x1: left, x2: width - right, y1: level, y2: level, class: "grid" }));
    children.push(svgElement("text", { x: left - 4, y: level + 3, "text-anchor": "end", class: "axis" }, axisFormat(ceiling * fraction)));
  }
  const span = end - start;
  const since = span < 90 ? `${Math.round(span)} s ago` : `${Math.round(span / 60)} min ago`;
  children.push(svgElement("text", { x: left, y: height - 4, class: "axis" }, since));
  children.push(svgElement("text", { x: width - right, y: height - 4, "text-anchor": "end", class: "axis" }, "now"));
  const line = values.map((point) => `${x(point.time).toFixed(1)},${y(point[field]).toFixed(1)}`);
  const base = y(0).toFixed(1);
  const area = `${x(values[0].time).toFixed(1)},${base} ${line.join(" ")} ${x(values[values.length - 1].time).toFixed(1)},${base}`;
  children.push(svgElement("polygon", { points: area, class: "area" }));
  children.push(svgElement("polyline", { points: line.join(" "), class: "line" }));
  svg.replaceChildren(...children);
}

// --- refresh loop ---------------------------------------------------------------------

function showStatus(message) {
  const status = $("status");
  status.textContent = message || "";
  status.hidden = !message;
}

async function refresh() {
  try {
    const [cluster, history] = await Promise.all([api("/cluster"), api("/history")]);
    showNode(cluster.body.node);
    showMembers(cluster.body.node, cluster.body.peers);
    const points = history.body.points;
    drawChart("chart-keys", points, "keys", (value) => integer.format(Math.round(value)));
    drawChart("chart-tokens", points, "tokens_per_second", rate);
    drawChart("chart-sync", points, "sync_bytes_per_second", bytes, bytes);
    await showTop();
    showStatus("");
    document.body.dataset.refreshed = String(Date.now());
  } catch (error) {
    showStatus(
      error instanceof ApiError ? `The node answered: ${error.message}` : "The node does not answer; retrying.",
    );
  }
}

// --- lookup ---------------------------------------------------------------------------

async function lookup(event) {
  if (event) event.preventDefault();
  const words = $("lookup-keywords").value.split(/[\s,]+/).filter(Boolean);
  const result = $("lookup-result");
  const problem = $("lookup-error");
  problem.hidden = true;
  if (words.length === 0) {
    result.replaceChildren();
    return;
  }
  const query = new URLSearchParams(words.map((word) => ["keywords", word]));
  try {
    const { body } = await api(`/keywords?${query}`);
    result.replaceChildren(
      ...body.map((item) => {
        const entry = document.createElement("li");
        entry.dataset.keyword = item.key;
        entry.dataset.count = String(item.count);
        const name = document.createElement("span");
        name.textContent = item.key;
        const count = document.createElement("strong");
        count.textContent = integer.format(item.count);
        entry.append(name, count);
        return entry;
      }),
    );
  } catch (error) {
    result.replaceChildren();
    problem.textContent = error instanceof ApiError ? error.message : "The node does not answer; try again.";
    problem.hidden = false;
  }
}

// --- post -----------------------------------------------------------------------------

// A key per text, the same on every retry of it: the node counts the text once.
function idempotencyKey() {
  const random = crypto.getRandomValues(new Uint8Array(16));
  return `dashboard-${Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

async function post(event) {
  event.preventDefault();
  const text = $("post-text").value;
  const output = $("post-result");
  const problem = $("post-error");
  const button = event.submitter || $("post").querySelector("button");
  problem.hidden = true;
  output.textContent = "";
  delete output.dataset.tokens;
  button.disabled = true;
  const key = idempotencyKey();
  try {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const { body, response } = await api(
          "/keywords",
          { method: "POST", body: text, headers: { "Content-Type": "text/plain; charset=utf-8", "Idempotency-Key": key } },
          "write",
        );
        const replayed = response.headers.get("Idempotent-Replayed") === "true";
        output.textContent =
          `Counted ${integer.format(body.tokens)} tokens of ${integer.format(body.keywords)} keywords` +
          (replayed ? " (a retry: counted once)." : ".");
        output.dataset.tokens = String(body.tokens);
        output.dataset.keywords = String(body.keywords);
        break;
      } catch (error) {
        // No answer or a busy node: the same key makes the retry safe.
        const retryable = !(error instanceof ApiError) || [408, 429, 503].includes(error.status);
        if (!retryable || attempt >= 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
    if ($("lookup-keywords").value.trim()) await lookup();
    refresh();
  } catch (error) {
    problem.textContent = error instanceof ApiError ? error.message : "The node did not answer three tries: the text may not have been counted.";
    problem.hidden = false;
  } finally {
    button.disabled = false;
  }
}

$("lookup").addEventListener("submit", lookup);
$("post").addEventListener("submit", post);
refresh();
setInterval(refresh, REFRESH_MS);
setInterval(() => {
  for (const element of document.querySelectorAll('#members td[data-field="last_success"]')) {
    if (element.dataset.value) element.textContent = ago(Number(element.dataset.value));
  }
}, 1000);
