"use strict";
// The home page: renders the explorer's JSON API; every panel refreshes on its own and fails on
// its own. pages.js routes (#/tx/0x…, #/file/0x…) and drives the refresh.
const REFRESH_MS = 2000;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// A cell linking to a page of the explorer (href: its hash route).
function linkCell(text, href, cls) {
  const td = cell("", cls);
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  td.append(a);
  return td;
}

function short(id) {
  return id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id;
}

function fill(tableId, rows, emptyText) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = document.querySelectorAll(`#${tableId} th`).length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const cells of rows) {
    const tr = document.createElement("tr");
    tr.append(...cells);
    body.append(tr);
  }
}

// Answers fetched ahead in one request (the home page's /api/home), each used once.
const prefetched = new Map();

async function getJson(path) {
  const ahead = prefetched.get(path);
  if (ahead) {
    prefetched.delete(path);
    return answerOf(ahead.status, ahead.body, "");
  }
  const response = await fetch(path);
  return answerOf(response.status, await response.json(), response.statusText);
}

function answerOf(status, body, statusText) {
  if (status < 200 || status >= 300) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => `${d.loc.at(-1)}: ${d.msg}`).join("; ") : body.detail;
    throw Object.assign(new Error(detail || statusText || `HTTP ${status}`), { status });
  }
  return body;
}

function age(timestamp) {
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - timestamp));
  return seconds < 120 ? `${seconds}s ago` : `${Math.round(seconds / 60)}m ago`;
}

async function refreshStatus() {
  const summary = document.getElementById("chain-summary");
  try {
    const s = await getJson("/api/status");
    summary.innerHTML = "";
    summary.append(`chain ${s.chainId} · block ${s.block} · ${s.rpcUrl}`);
    summary.className = "summary ok";
    fill("contracts", Object.entries(s.contracts).map(([name, address]) => [cell(name), cell(address, "mono")]),
      "no deployment");
  } catch (error) {
    summary.textContent = `chain unreachable: ${error.message}`;
    summary.className = "summary bad";
  }
}

async function refreshBlocks() {
  try {
    const blocks = await getJson("/api/blocks?limit=10");
    fill("blocks", blocks.map((b) => [linkCell(b.number, `#/block/${b.number}`), cell(age(b.timestamp)),
      cell(b.transactions), cell(b.gasUsed), cell(short(b.hash), "mono")]), "no blocks");
  } catch (error) {
    fill("blocks", [], `unavailable: ${error.message}`);
  }
}

async function refreshServices() {
  try {
    const services = await getJson("/api/services");
    const cls = { healthy: "ok", stopped: "bad" };
    fill("services", services.map((s) => [cell(s.name), cell(s.url, "mono"), cell(s.pid ?? "-"),
      cell(s.state, cls[s.state] || "warn")]), "not a devnet");
  } catch (error) {
    fill("services", [], `unavailable: ${error.message}`);
  }
}

async function refreshNodes() {
  try {
    const nodes = await getJson("/api/nodes");
    const rows = [];
    for (const [kind, list] of Object.entries(nodes)) {
      for (const n of list) rows.push([cell(kind), cell(n.operator, "mono"), cell(n.url, "mono"),
        cell(`${n.shardId}/${n.numShard}`)]);
    }
    fill("nodes", rows, "no nodes announced");
  } catch (error) {
    fill("nodes", [], `unavailable: ${error.message}`);
  }
}

// An amount in wei (neuron), as 0G when it is at least a millionth of one, else in neuron.
function og(neurons) {
  const n = Number(neurons);
  return n !== 0 && n < 1e12 ? `${n} neuron` : `${(n / 1e18).toFixed(6)} 0G`;
}

async function refreshStorage() {
  const summary = document.getElementById("storage-summary");
  try {
    const s = await getJson("/api/storage");
    summary.textContent = `${s.flow.submissions} submissions · ${s.flow.sectors} sectors in the flow · ` +
      `fees deposited ${og(s.rewards.deposited)} · paid to miners ${og(s.rewards.paid)}`;
    fill("storage", s.nodes.map((n) => {
      if (n.error) return [cell(n.url, "mono"), cell(n.shard), cell(n.error, "bad"), cell("-"), cell("-"), cell("-")];
      const m = n.miner;
      const miner = m ? `${m.running ? "mining" : "stopped"} · ${m.hashRate} it/s · ` +
        `${m.answersAccepted}/${m.answersSubmitted} answers · earned ${og(m.totalReward)}` : "not mining";
      return [cell(n.url, "mono"), cell(n.shard), cell(`block ${n.logSyncHeight}`), cell(n.nextTxSeq),
        cell(n.peers), cell(miner, m && m.running ? "ok" : "")];
    }), "no storage nodes announced");
  } catch (error) {
    summary.textContent = `unavailable: ${error.message}`;
    fill("storage", [], "unavailable");
  }
}

async function refreshCompute() {
  try {
    const services = await getJson("/api/compute");
    fill("compute", services.map((s) => [cell(s.provider, "mono"), cell(s.model), cell(s.url, "mono"),
      cell(`${s.inputPrice} / ${s.outputPrice}`)]), "no services registered");
  } catch (error) {
    fill("compute", [], `unavailable: ${error.message}`);
  }
}

async function refreshInft() {
  const summary = document.getElementById("inft-summary");
  try {
    const s = await getJson("/api/inft");
    summary.textContent = `${s.total} tokens · ${s.threshold} of ${s.oracles.length} oracles must sign a transfer ` +
      "(trusted signers, not TEEs)";
    fill("inft", s.tokens.map((t) => [cell(t.tokenId), cell(t.owner, "mono"),
      cell(t.datas.map((d) => `${d.description}: ${d.dataHash.slice(0, 18)}…`).join(", ") || "none (plain ERC-721)", "mono"),
      cell(t.authorized.length ? t.authorized.join(", ") : "none", "mono")]), "no agents minted yet");
  } catch (error) {
    summary.textContent = `unavailable: ${error.message}`;
    fill("inft", [], "unavailable");
  }
}

async function refreshList(tableId, path, key, row, emptyText) {
  try {
    const page = await getJson(path);
    fill(tableId, page[key].map(row), emptyText);
  } catch (error) {
    fill(tableId, [], `unavailable: ${error.message}`);
  }
}

// Series of [x, y] points drawn as lines on one inline SVG chart (each series its own colour;
// y from 0 to the largest value). Fewer than two points in all: a note instead.
function lineChart(series, xName) {
  const W = 480, H = 160, PAD = 34;
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) {
    const note = document.createElement("p");
    note.className = "empty";
    note.textContent = "no data to chart yet";
    return note;
  }
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(0, ...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const sx = (x) => PAD + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * PAD);
  const sy = (y) => H - PAD - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * PAD);
  const svg = svgEl("svg", { width: W, height: H, class: "chart", role: "img", "aria-label": series.map((s) => s.name).join(" and ") });
  series.forEach((s, i) => {
    svg.append(svgEl("polyline", { points: s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), class: `curve c${i}` }));
    svg.append(svgEl("text", { x: W - PAD - 90, y: 14 + 12 * i, class: `c${i}` }, s.name));
  });
  svg.append(svgEl("text", { x: 2, y: PAD }, y1.toPrecision(3)), svgEl("text", { x: 2, y: H - PAD }, y0.toPrecision(3)),
    svgEl("text", { x: PAD, y: H - 8 }, `${xName} ${x0}`), svgEl("text", { x: W - PAD - 60, y: H - 8 }, `${xName} ${x1}`));
  return svg;
}

async function refreshRewardChart() {
  try {
    const points = await getJson("/api/storage/rewards");
    const series = (key) => points.map((p) => [p.block, Number(p[key]) / 1e18]);
    document.getElementById("rewards-chart").replaceChildren(
      lineChart([{ name: "fees in (0G)", points: series("fees") }, { name: "paid to miners (0G)", points: series("paid") }], "block"));
  } catch (error) {
    document.getElementById("rewards-chart").textContent = `unavailable: ${error.message}`;
  }
}

// Every panel of the home page, at once; resolves when all have drawn (or failed).
// The answers come in one /api/home request first; a panel whose answer is missing asks alone.
async function refreshAll() {
  try {
    for (const [path, answer] of Object.entries(await getJson("/api/home"))) prefetched.set(path, answer);
  } catch (error) {
    // an explorer without /api/home, or a failed request: each panel asks on its own
  }
  await Promise.all([
    refreshStatus(),
    refreshRewardChart(),
    refreshBlocks(),
    refreshList("files", "/api/storage/files?limit=5", "files", (f) => [linkCell(short(f.root), `#/file/${f.root}`, "mono"),
      cell(`${f.size} B`), linkCell(short(f.uploader), `#/address/${f.uploader}`, "mono"), cell(f.block)], "no files uploaded yet"),
    refreshList("blobs", "/api/da/blobs?limit=5", "blobs", (b) => [linkCell(short(b.blobId), `#/blob/${b.blobId}`, "mono"),
      cell(`${b.size} B`), cell(b.status, b.status === "certified" ? "ok" : "warn"), cell(b.epoch)], "no blobs yet"),
    refreshList("tasks", "/api/compute/tasks?limit=5", "tasks", (t) => [linkCell(t.taskId, `#/task/${t.taskId}`),
      cell(t.status), cell(short(t.user), "mono"), cell(og(t.fee))], "no fine-tuning tasks yet"),
    refreshServices(),
    refreshNodes(),
    refreshStorage(),
    refreshCompute(),
    refreshInft(),
  ]);
  prefetched.clear(); // nothing fetched ahead outlives this refresh
}

// --- lineage: the provenance tree of /api/provenance/{id}, drawn as a layered graph ---------
const SVG_NS = "http://www.w3.org/2000/svg";
const BOX_W = 230, BOX_H = 58, GAP_X = 40, GAP_Y = 14;
// The page each kind of lineage node links to.
const NODE_PAGES = { response: "response", model: "model", task: "task", dataset: "file", deliverable: "file", account: "address" };

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function layout(root) {
  const placed = [];
  const rows = [];
  (function visit(node, depth, parent) {
    rows[depth] = (rows[depth] || 0) + 1;
    const item = { node, depth, row: rows[depth] - 1, parent };
    placed.push(item);
    for (const child of node.children) visit(child, depth + 1, item);
  })(root, 0, null);
  return placed;
}

function drawLineage(tree, svg) {
  svg.replaceChildren();
  const placed = layout(tree);
  const x = (p) => p.depth * (BOX_W + GAP_X) + 4;
  const y = (p) => p.row * (BOX_H + GAP_Y) + 4;
  svg.setAttribute("width", Math.max(...placed.map((p) => x(p) + BOX_W)) + 8);
  svg.setAttribute("height", Math.max(...placed.map((p) => y(p) + BOX_H)) + 8);
  for (const p of placed) {
    if (p.parent) svg.append(svgEl("line", { x1: x(p.parent) + BOX_W, y1: y(p.parent) + BOX_H / 2,
      x2: x(p), y2: y(p) + BOX_H / 2, class: "edge" }));
  }
  for (const p of placed) {
    const g = svgEl("g", { class: `lnode ${p.node.verified ? "verified" : "unverified"}`, "data-kind": p.node.kind });
    g.append(svgEl("rect", { x: x(p), y: y(p), width: BOX_W, height: BOX_H, rx: 6 }));
    g.append(svgEl("text", { x: x(p) + 8, y: y(p) + 18, class: "label" }, p.node.label));
    g.append(svgEl("text", { x: x(p) + 8, y: y(p) + 34, class: "mono" }, p.node.id.length > 30
      ? `${p.node.id.slice(0, 14)}…${p.node.id.slice(-10)}` : p.node.id));
    const passed = p.node.checks.filter((c) => c.ok === true).length;
    g.append(svgEl("text", { x: x(p) + 8, y: y(p) + 50, class: "checks" },
      `${p.node.verified ? "✓ verified" : "? not fully verified"} (${passed}/${p.node.checks.length} checks)`));
    const title = svgEl("title", {}, p.node.checks.map((c) => `${c.ok === true ? "✓" : c.ok === false ? "✗" : "?"} ${c.name}`)
      .join("\n"));
    g.append(title);
    const page = NODE_PAGES[p.node.kind];
    if (page) {
      const a = svgEl("a", { href: `#/${page}/${p.node.id}` });
      a.append(g);
      svg.append(a);
    } else svg.append(g);
  }
}

async function showLineage(id) {
  const summary = document.getElementById("lineage-summary");
  summary.textContent = `tracing ${id}…`;
  try {
    const tree = await getJson(`/api/provenance/${encodeURIComponent(id)}`);
    drawLineage(tree, document.getElementById("lineage"));
    const all = layout(tree).map((p) => p.node);
    summary.textContent = `${tree.label}: ${all.filter((n) => n.verified).length} of ${all.length} nodes verified`;
    summary.className = "summary ok";
  } catch (error) {
    document.getElementById("lineage").replaceChildren();
    summary.textContent = `lineage unavailable: ${error.message}`;
    summary.className = "summary bad";
  }
}

document.getElementById("lineage-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = document.getElementById("lineage-id").value.trim();
  if (id) showLineage(id);
});
const lineageParam = new URLSearchParams(window.location.search).get("lineage");
if (lineageParam) {
  document.getElementById("lineage-id").value = lineageParam;
  showLineage(lineageParam);
}
