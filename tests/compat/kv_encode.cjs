// Encode KV transactions with the 0G TS SDK. Argument: a JSON file holding a list of
// {version, reads: [[streamId, keyHex]], writes: [[streamId, keyHex, dataHex]],
//  controls: [[type, streamId, keyHex|null, accountHex|null]], viaBuilder: bool}.
// Prints one line per transaction: "<encoded hex> <tags hex>".
const fs = require("fs");
const { StreamData, StreamDataBuilder } = require("@0gfoundation/0g-ts-sdk");

const bytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
const hex = (u8) => Buffer.from(u8).toString("hex");

function viaBuilder(tx) {
  const builder = new StreamDataBuilder(tx.version);
  for (const [sid, key, data] of tx.writes) builder.set(sid, bytes(key), bytes(data));
  const data = builder.build();
  return [data.encode(), builder.buildTags()];
}

function direct(tx) {
  const data = new StreamData(tx.version);
  data.Reads = tx.reads.map(([sid, key]) => ({ StreamId: sid, Key: bytes(key) }));
  data.Writes = tx.writes.map(([sid, key, d]) => ({ StreamId: sid, Key: bytes(key), Data: bytes(d) }));
  data.Controls = tx.controls.map(([type, sid, key, account]) => {
    const control = { Type: type, StreamId: sid };
    if (key !== null) control.Key = bytes(key);
    if (account !== null) control.Account = "0x" + account;
    return control;
  });
  const ids = [...new Set([...tx.writes.map((w) => w[0]), ...tx.controls.map((c) => c[1])])];
  return [data.encode(), new StreamDataBuilder(tx.version).createTags(ids)];
}

for (const tx of JSON.parse(fs.readFileSync(process.argv[2], "utf8"))) {
  const [encoded, tags] = tx.viaBuilder ? viaBuilder(tx) : direct(tx);
  console.log(hex(encoded) + " " + hex(tags));
}
