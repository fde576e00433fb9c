// Compiles every contract under src/ with the pinned solc-js and writes one JSON artifact
// per contract (abi, bytecode, deployedBytecode, sourceHash) to ../zgos/chain/artifacts.
// sourceHash is recomputed by the Python test suite to catch stale artifacts.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const SRC = path.join(__dirname, "src");
const OUT = process.env.ZGOS_ARTIFACTS_OUT || path.join(__dirname, "..", "zgos", "chain", "artifacts");
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "prague",
  viaIR: true,
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function listSources(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listSources(p) : p.endsWith(".sol") ? [p] : [];
  }).sort();
}

/** sha256 over (relative path, NUL, content, NUL) of every source, then compiler and settings. */
function sourceHash(files) {
  const h = crypto.createHash("sha256");
  for (const f of files) {
    h.update(path.relative(SRC, f).split(path.sep).join("/") + "\0");
    h.update(fs.readFileSync(f) + "\0");
  }
  h.update(`solc ${require("solc/package.json").version}\0${JSON.stringify(SETTINGS)}`);
  return h.digest("hex");
}

function findImport(p) {
  for (const base of [path.join(__dirname, "node_modules"), SRC]) {
    const full = path.join(base, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `not found: ${p}` };
}

const files = listSources(SRC);
const input = {
  language: "Solidity",
  sources: Object.fromEntries(files.map((f) => [path.relative(SRC, f), { content: fs.readFileSync(f, "utf8") }])),
  settings: SETTINGS,
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

const hash = sourceHash(files);
fs.mkdirSync(OUT, { recursive: true });
for (const f of fs.readdirSync(OUT)) if (f.endsWith(".json")) fs.unlinkSync(path.join(OUT, f));
let count = 0;
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: require("solc/package.json").version,
      sourceHash: hash,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(artifact, null, 1) + "\n");
    count++;
  }
}
console.log(`compiled ${count} contracts from ${files.length} sources -> ${path.relative(process.cwd(), OUT)}`);
