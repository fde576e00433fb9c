"use strict";
// Pages with a deep link each (#/tx/0x…, #/block/N, #/address/0x…, #/file/0x…, #/blob/0x…,
// #/task/N, #/token/N, #/model/0x…, #/response/0x…), the paged lists (#/blocks, #/files,
// #/blobs, #/tasks, #/settlements; #/files/N lists those below index N), the search box, and
// the refresh loop (the page on view is fetched again every REFRESH_MS). Uses explorer.js.
const PAGE_SIZE = 20;
const STILL = new Set(["tx", "block", "model", "response", "lineage"]); // pages that do not change: drawn once

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children.filter((c) => c !== null && c !== undefined).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

const link = (text, href) => el("a", { href }, text);
const mono = (text) => el("span", { class: "mono" }, text);
const address = (a) => (a ? el("a", { href: `#/address/${a}`, class: "mono" }, a) : "—");
const txLink = (h) => el("a", { href: `#/tx/${h}`, class: "mono" }, h);

function kv(rows) {
  return el("table", { class: "kv" }, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

function table(headers, rows, emptyText) {
  const body = rows.length ? rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))
    : [el("tr", {}, el("td", { colspan: headers.length, class: "empty" }, emptyText))];
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), el("tbody", {}, ...body));
}

function section(title, ...children) {
  return el("section", {}, el("h2", {}, title), ...children);
}

function pager(route, items, indexOf) {
  if (!items.length) return null;
  const last = indexOf(items[items.length - 1]);
  return el("p", { class: "pager" }, link("newest", `#/${route}`), " · ",
    last > 0 ? link("older →", `#/${route}/${last}`) : "no older");
}

function args(values) {
  return el("pre", { class: "args" }, JSON.stringify(values, null, 1));
}

// --- one page per kind of id ---------------------------------------------------------------

async function txPage(hash) {
  const tx = await getJson(`/api/tx/${hash}`);
  const call = tx.call ? el("span", {}, el("b", {}, `${tx.call.contract}.${tx.call.function}`), args(tx.call.args))
    : (tx.inputBytes ? `${tx.inputBytes} bytes, not a call to one of our contracts` : "plain transfer");
  return [section(`Transaction ${tx.hash}`, kv([
    ["status", el("span", { class: tx.status === "success" ? "ok" : "bad" }, tx.status)],
    ["block", link(tx.block, `#/block/${tx.block}`)], ["from", address(tx.sender)],
    ["to", el("span", {}, address(tx.to), tx.toName ? ` (${tx.toName})` : "")],
    ["value", og(tx.value)], ["gas used", tx.gasUsed], ["call", call]])),
  section("Events", table(["#", "contract", "event", "arguments"], tx.events.map((e) => [e.logIndex,
    e.contract || mono(e.address), el("b", { class: "event" }, e.event || "(undecoded)"), args(e.args)]), "no events"))];
}

async function blockPage(number) {
  const b = await getJson(`/api/block/${number}`);
  return [section(`Block ${b.block.number}`, kv([["hash", mono(b.block.hash)], ["parent", mono(b.parentHash)],
    ["time", `${new Date(b.block.timestamp * 1000).toISOString()} (${age(b.block.timestamp)})`],
    ["gas used", b.block.gasUsed], ["transactions", b.block.transactions]]),
  el("p", {}, b.block.number > 0 ? link("← previous", `#/block/${b.block.number - 1}`) : "", " ",
    link("next →", `#/block/${b.block.number + 1}`))),
  section("Transactions", table(["hash", "from", "to", "call", "value"], b.transactions.map((t) => [txLink(t.hash),
    address(t.sender), t.toName || address(t.to), t.method || "—", og(t.value)]), "no transactions"))];
}

async function addressPage(a) {
  const [info, ledger, standing] = await Promise.all([getJson(`/api/address/${a}`),
    getJson(`/api/compute/ledger/${a}`).catch(() => null), getJson(`/api/alignment/subject/${a}`).catch(() => null)]);
  const parts = [section(`Address ${info.address}`, kv([["contract", info.contract || (info.hasCode ? "a contract (not ours)" : "an account")],
    ["balance", og(info.balance)], ["nonce", info.nonce]]))];
  if (ledger && (Number(ledger.available) > 0 || ledger.subAccounts.length)) {
    parts.push(section("Compute ledger", kv([["available", og(ledger.available)]]),
      table(["provider", "balance", "pending refund", "settled"], ledger.subAccounts.map((s) => [address(s.provider),
        og(s.balance), og(s.pendingRefund), og(s.settled)]), "no sub-accounts")));
  }
  if (standing) parts.push(...standingSections(standing));
  return parts;
}

const REPORT_HEADERS = ["subject", "kind", "finding", "score Δ", "score after", "auditor", "evidence", "tx"];
const reportRow = (r) => [address(r.subject), r.kind, r.finding, r.scoreDelta, r.score, address(r.auditor),
  el("a", { href: `#/file/${r.evidenceRoot}`, class: "mono" }, r.evidenceRoot), txLink(r.tx)];
const SUBJECT_HEADERS = ["operator", "kind", "score", "faults", "slashes", "slashed"];
const subjectRow = (s) => [address(s.operator), s.kind, el("span", { class: s.score < 0 ? "bad" : "ok" }, s.score),
  s.faults, s.slashes, og(s.slashed)];

function standingSections(s) {
  return [section("Alignment standing", table(SUBJECT_HEADERS, s.records.map(subjectRow), "no bond or record")),
    section("Reports on it", table(REPORT_HEADERS, s.reports.map(reportRow), "no reports"))];
}

async function alignmentPage(before) {
  const [subjects, page] = await Promise.all([getJson("/api/alignment"),
    getJson(`/api/alignment/reports?limit=${PAGE_SIZE}${before ? `&before=${before}` : ""}`)]);
  return [section(`Operators auditors watch (${subjects.length})`, table(SUBJECT_HEADERS, subjects.map(subjectRow), "none yet")),
    section(`Audit reports (${page.total})`, table(REPORT_HEADERS, page.reports.map(reportRow), "none yet"),
      pager("alignment", page.reports, (r) => r.index))];
}

// An erasure-coded file's stripes, one square each: all pieces held, degraded, or unreadable.
function erasureSection(h) {
  if (h === null) return null; // a plain file
  if (h instanceof Error) return section("Erasure coding", el("p", { class: "bad" }, h.message));
  const state = (s) => (s.present >= h.pieces ? "ok" : s.present >= h.k ? "warn" : "bad");
  const squares = h.stripes.map((s) => el("span", { class: state(s),
    title: `stripe ${s.stripe}: ${s.present} of ${h.pieces} pieces held${s.dataMissing ? `, ${s.dataMissing} data pieces lost` : ""}` }));
  const survives = h.survivesMoreLosses < 0 ? el("span", { class: "bad" }, "unreadable: some stripe has fewer than k pieces")
    : el("span", { class: h.survivesMoreLosses ? "ok" : "warn" }, `survives ${h.survivesMoreLosses} more node loss(es)`);
  const restore = Object.entries(h.toRestore).map(([url, n]) => `${url}: ${n}`).join(", ");
  return section(`Erasure coding ${h.ec}`, kv([["health", survives],
    ["stripes", `${h.stripesTotal}: ${h.stripesTotal - h.degraded - h.unreadable} whole, ${h.degraded} degraded, ${h.unreadable} unreadable`],
    ["parity file", link(h.parityRoot, `#/file/${h.parityRoot}`)],
    ["unreachable nodes", h.deadNodes.length ? h.deadNodes.join(", ") : "none"],
    ["to restore", restore || "nothing"]]),
  el("div", { class: "stripes" }, ...squares),
  h.stripes.length < h.stripesTotal ? el("p", { class: "summary" }, `the first ${h.stripes.length} stripes are drawn`) : null);
}

async function filePage(root) {
  const [f, ec] = await Promise.all([getJson(`/api/storage/file/${root}`),
    getJson(`/api/storage/file/${root}/erasure`).catch((e) => (e.status === 404 ? null : e))]);
  return [section(`File ${f.root}`, kv([["size", `${f.size} bytes`], ["uploader", address(f.uploader)],
    ["lineage", link("trace its provenance", `#/lineage/${f.root}`)]])),
  section("Submissions", table(["seq", "tx", "block", "sender", "sectors"], f.submissions.map((s) => [s.seq, txLink(s.tx),
    link(s.block, `#/block/${s.block}`), address(s.uploader), s.sectors]), "none")),
  section("Storage nodes", table(["node", "shard", "holds it", "segments", "finalized"], f.nodes.map((n) => [mono(n.url),
    n.shard, n.error ? el("span", { class: "bad" }, n.error) : (n.known ? "yes" : "no"), n.uploadedSegments ?? "—",
    n.finalized === true ? el("span", { class: "ok" }, "finalized") : String(n.finalized ?? "—")]), "no storage nodes announced")),
  erasureSection(ec)];
}

// This explorer's own sampling of a certified blob (nothing on chain records sampling).
function samplingSection(s) {
  if (s === null) return null;
  if (s instanceof Error) return section("Availability sampling", el("p", { class: "bad" }, s.message));
  const verdict = s.available ? el("span", { class: "ok" }, `available: ${s.verified} of ${s.samples} samples verified`)
    : el("span", { class: "bad" }, `NOT available: ${s.samples - s.verified} of ${s.samples} samples failed`);
  return section("Availability sampling", kv([["result", verdict],
    ["confidence", `${(100 * s.confidence).toFixed(4)}% that every row is recoverable`],
    ["sampled", `by this explorer ${age(s.sampledAt)}, each cell checked against its row's KZG commitment on chain`]]),
  s.failures.length ? table(["signer", "url", "reason"], s.failures.map((f) => [address(f.signer), mono(f.url), el("span", { class: "wrap" }, f.reason)]), "") : null);
}

async function blobPage(id) {
  const [{ blob: b, certificate: c }, s] = await Promise.all([getJson(`/api/da/blob/${id}`),
    getJson(`/api/da/blob/${id}/sampling`).catch((e) => (e.status === 409 ? null : e))]);
  return [section(`DA blob ${b.blobId}`, kv([["status", el("span", { class: b.status === "certified" ? "ok" : "warn" }, b.status)],
    ["size", `${b.size} bytes`], ["submitter", address(b.submitter)], ["epoch", b.epoch], ["fee", og(b.fee)],
    ["submitted in", txLink(b.tx)], ["certificate", c ? txLink(c.tx) : "not certified"],
    ["signed stake", c ? `${og(c.signedStake)} of ${og(c.totalStake)}` : "—"]])),
  section("Signers who signed", table(["signer"], (c ? c.signers : []).map((a) => [address(a)]), "no certificate yet")),
  samplingSection(s)];
}

async function taskPage(id) {
  const { task: t, progress: p, progressError } = await getJson(`/api/compute/task/${id}`);
  return [section(`Fine-tuning task ${t.taskId}`, kv([["status", t.status], ["user", address(t.user)],
    ["provider", address(t.provider)], ["fee", og(t.fee)], ["base model", link(t.baseModel, `#/model/${t.baseModel}`)],
    ["dataset", link(t.datasetRoot, `#/file/${t.datasetRoot}`)],
    ["result", t.resultRoot ? link(t.resultRoot, `#/file/${t.resultRoot}`) : "not delivered"]])),
  section("Progress (as its provider reports it)", p ? kv([["state", p.state], ["step", `${p.step} of ${p.total_steps}`],
    ["loss", p.loss ?? "—"], ["error", p.error || "none"]]) : el("p", { class: "warn" }, progressError),
  p ? lineChart([{ name: "loss", points: p.losses }], "step") : null)];
}

async function tokenPage(id) {
  const t = await getJson(`/api/inft/token/${id}`);
  return [section(`Agent token ${t.tokenId}`, kv([["owner", address(t.owner)],
    ["authorized", t.authorized.length ? el("span", {}, ...t.authorized.map(address)) : "none"]])),
  section("Data", table(["description", "storage root"], t.datas.map((d) => [d.description,
    link(d.dataHash, `#/file/${d.dataHash}`)]), "none (plain ERC-721)"))];
}

async function lineagePage(id) {
  const tree = await getJson(`/api/provenance/${id}`);
  const svg = svgEl("svg", { class: "lineage", role: "img", "aria-label": "lineage graph" });
  drawLineage(tree, svg);
  const all = layout(tree).map((p) => p.node);
  const checks = all.flatMap((n) => n.checks.map((c) => [n.label, c.ok === true ? "✓" : c.ok === false ? "✗" : "?", c.name, c.detail]));
  return [section(`Lineage of ${tree.label}`, el("p", { class: "summary" },
    `${all.filter((n) => n.verified).length} of ${all.length} nodes verified`), svg),
  section("Checks", table(["node", "", "check", "detail"], checks, "no checks"))];
}

// --- paged lists ---------------------------------------------------------------------------

async function blocksList(before) {
  const blocks = await getJson(`/api/blocks?limit=${PAGE_SIZE}${before ? `&before=${before}` : ""}`);
  return [section("Blocks", table(["block", "age", "txs", "gas used", "hash"], blocks.map((b) => [link(b.number, `#/block/${b.number}`),
    age(b.timestamp), b.transactions, b.gasUsed, mono(b.hash)]), "no blocks"), pager("blocks", blocks, (b) => b.number))];
}

function pagedList(title, path, key, headers, row) {
  return async (before) => {
    const page = await getJson(`${path}?limit=${PAGE_SIZE}${before ? `&before=${before}` : ""}`);
    const route = location.hash.slice(2).split("/")[0];
    return [section(`${title} (${page.total})`, table(headers, page[key].map(row), "none yet"),
      pager(route, page[key], (item) => item.index ?? item.taskId))];
  };
}

const PAGES = {
  tx: txPage, block: blockPage, address: addressPage, file: filePage, blob: blobPage, task: taskPage,
  token: tokenPage, alignment: alignmentPage, model: lineagePage, response: lineagePage, lineage: lineagePage, blocks: blocksList,
  files: pagedList("Files on Flow", "/api/storage/files", "files", ["root", "size", "uploader", "tx", "block"],
    (f) => [link(f.root, `#/file/${f.root}`), `${f.size} B`, address(f.uploader), txLink(f.tx), f.block]),
  blobs: pagedList("DA blobs", "/api/da/blobs", "blobs", ["blob", "size", "status", "submitter", "epoch"],
    (b) => [link(b.blobId, `#/blob/${b.blobId}`), `${b.size} B`, b.status, address(b.submitter), b.epoch]),
  tasks: pagedList("Fine-tuning tasks", "/api/compute/tasks", "tasks", ["task", "status", "user", "provider", "fee"],
    (t) => [link(t.taskId, `#/task/${t.taskId}`), t.status, address(t.user), address(t.provider), og(t.fee)]),
  settlements: pagedList("Settlements", "/api/compute/settlements", "settlements", ["provider", "user", "amount", "total", "tx"],
    (s) => [address(s.provider), address(s.user), og(s.amount), og(s.total), txLink(s.tx)]),
};

// --- routing, search, refresh --------------------------------------------------------------

function currentRoute() {
  const [kind, id] = location.hash.replace(/^#\/?/, "").split("/");
  return PAGES[kind] ? { kind, id: id ? decodeURIComponent(id) : "" } : null;
}

// Marks a page as drawn, for tests and the bench: <body data-rendered="KIND">, and
// window.firstRender: ms from navigation start to the first page drawn.
function markRendered(kind) {
  if (window.firstRender === undefined) window.firstRender = performance.now();
  document.body.dataset.rendered = kind;
}

async function render(route) {
  const page = document.getElementById("page");
  try {
    const parts = await PAGES[route.kind](route.id);
    if (currentRoute()?.kind === route.kind) page.replaceChildren(...parts.filter(Boolean));
  } catch (error) {
    page.replaceChildren(section("Not found", el("p", { class: "bad" }, error.message)));
  }
  markRendered(route.kind);
}

function show() {
  const route = currentRoute();
  document.getElementById("home").hidden = route !== null;
  document.getElementById("page").hidden = route === null;
  if (route) {
    refreshStatus();
    render(route);
  } else refreshAll().then(() => markRendered("home"));
}

document.getElementById("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("search-result");
  const q = document.getElementById("search").value.trim();
  if (!q) return;
  try {
    const result = await getJson(`/api/search?q=${encodeURIComponent(q)}`);
    if (result.matches.length === 1) {
      out.replaceChildren();
      location.hash = result.matches[0].link;
    } else {
      out.replaceChildren("several things have this id: ", ...result.matches.flatMap((m) => [link(m.label, m.link), " "]));
    }
    out.className = "summary";
  } catch (error) {
    out.textContent = error.message;
    out.className = "summary bad";
  }
});

window.addEventListener("hashchange", show);
show();
setInterval(() => {
  const route = currentRoute();
  if (!route) refreshAll(); // the chain's status included
  else {
    refreshStatus();
    if (!STILL.has(route.kind)) render(route);
  }
}, REFRESH_MS);
