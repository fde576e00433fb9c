// 0G's TS SDK file encryption, byte level (no network), for the zgos compatibility tests.
//   encrypt v1 KEY_HEX IN OUT      EncryptedFile with a symmetric key; prints its data root
//   encrypt v2 PUBKEY_HEX IN OUT   EncryptedFile to a secp256k1 public key; prints its data root
//   decrypt v1 KEY_HEX IN OUT      the SDK's decryptFile with a symmetric key
//   decrypt v2 PRIVKEY_HEX IN OUT  the SDK's key resolution for v2, then decryptFile
//   cryptat KEY_HEX NONCE_HEX OFFSET IN OUT   the SDK's cryptAt at a byte offset
const fs = require("fs");
const sdk = require("@0gfoundation/0g-ts-sdk");

const hex = (text) => Uint8Array.from(Buffer.from(text.replace(/^0x/, ""), "hex"));

// Read the encrypted stream in pieces at odd boundaries, as the upload pipeline does.
async function readAll(file) {
  const size = file.size();
  const parts = [];
  for (let start = 0, step = 4099; start < size; start += step, step = step * 3 + 1) {
    const { buffer } = await file.readFromFile(start, Math.min(size, start + step));
    parts.push(Buffer.from(buffer));
  }
  return Buffer.concat(parts);
}

async function encrypt(version, material, input, output) {
  const inner = new sdk.MemData(fs.readFileSync(input));
  const file = version === "v1"
    ? sdk.newSymmetricEncryptedFile(inner, hex(material))
    : sdk.newEciesEncryptedFile(inner, material);
  fs.writeFileSync(output, await readAll(file));
  const [tree, err] = await file.merkleTree();
  if (err !== null) throw err;
  console.log(tree.rootHash());
}

function decrypt(version, material, input, output) {
  const data = Uint8Array.from(fs.readFileSync(input));
  const header = sdk.parseEncryptionHeader(data);
  const key = version === "v1"
    ? sdk.resolveDecryptionKey(hex(material), undefined, header)
    : sdk.resolveDecryptionKey(undefined, hex(material), header);
  fs.writeFileSync(output, Buffer.from(sdk.decryptFile(key, data)));
}

(async () => {
  const [command, ...args] = process.argv.slice(2);
  if (command === "encrypt") await encrypt(...args);
  else if (command === "decrypt") decrypt(...args);
  else if (command === "cryptat") {
    const [key, nonce, offset, input, output] = args;
    const data = Uint8Array.from(fs.readFileSync(input));
    sdk.cryptAt(hex(key), hex(nonce), Number(offset), data);
    fs.writeFileSync(output, Buffer.from(data));
  } else throw new Error(`unknown command ${command}`);
})().catch((e) => { console.error(e); process.exit(1); });
