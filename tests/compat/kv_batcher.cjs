// 0G's TS SDK against a zgos KV deployment.
// write: node kv_batcher.cjs write RPC FLOW STORAGE_URL STREAM PAIRS.json   (key in ZG_PRIVATE_KEY)
//   sets every [keyHex, valueHex] of PAIRS.json with the SDK's Batcher (no read-set version
//   check) and prints {"txSeq", "root"} on its last line.
// read:  node kv_batcher.cjs read KV_URL STREAM KEYS.json
//   prints {"values": {keyHex: valueHex | null}, "iterated": [[keyHex, valueHex, version]]}:
//   KvClient.getValue for each key of KEYS.json, then a KvIterator from seekToFirst to the end.
const fs = require("fs");
const { Batcher, KvClient, StorageNode, getFlowContract } = require("@0gfoundation/0g-ts-sdk");
const { ethers } = require("ethers");

const NO_VERSION_CHECK = BigInt("18446744073709551615");
const bytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
const hexOf64 = (b64) => Buffer.from(b64, "base64").toString("hex");

async function write(rpc, flowAddress, storageUrl, stream, pairsPath) {
  const signer = new ethers.Wallet(process.env.ZG_PRIVATE_KEY, new ethers.JsonRpcProvider(rpc));
  const batcher = new Batcher(NO_VERSION_CHECK, [new StorageNode(storageUrl)], getFlowContract(flowAddress, signer), rpc);
  for (const [key, value] of JSON.parse(fs.readFileSync(pairsPath, "utf8"))) {
    batcher.streamDataBuilder.set(stream, bytes(key), bytes(value));
  }
  const [result, err] = await batcher.exec();
  if (err !== null) throw err;
  console.log(JSON.stringify({ txSeq: Number(result.txSeq), root: result.rootHash }));
}

async function read(kvUrl, stream, keysPath) {
  const client = new KvClient(kvUrl);
  const values = {};
  for (const key of JSON.parse(fs.readFileSync(keysPath, "utf8"))) {
    const value = await client.getValue(stream, bytes(key));
    values[key] = value === null || value.size === 0 ? null : hexOf64(value.data);
  }
  const iterated = [];
  const iterator = client.newIterator(stream);
  let err = await iterator.seekToFirst();
  while (err === null && iterator.valid()) {
    const pair = iterator.getCurrentPair();
    iterated.push([Buffer.from(pair.key).toString("hex"), hexOf64(pair.data), pair.version]);
    err = await iterator.next();
  }
  if (err !== null) throw err;
  console.log(JSON.stringify({ values, iterated }));
}

const [mode, ...args] = process.argv.slice(2);
(mode === "write" ? write(...args) : read(...args)).catch((e) => { console.error(e); process.exit(1); });
