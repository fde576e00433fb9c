"use strict";
// Renders the explorer's JSON API; every panel refreshes on its own and fails on its own.
const REFRESH_MS = 2000;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
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

async function getJson(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
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
    fill("blocks", blocks.map((b) => [cell(b.number), cell(age(b.timestamp)), cell(b.transactions),
      cell(b.gasUsed), cell(b.hash.slice(0, 18) + "…", "mono")]), "no blocks");
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

function refreshAll() {
  refreshStatus();
  refreshBlocks();
  refreshServices();
  refreshNodes();
}

refreshAll();
setInterval(refreshAll, REFRESH_MS);
