// Upload a file with 0G's TS SDK to a zgos node and Flow, then download it back with proofs.
// usage: node upload_download.cjs RPC FLOW NODE_URL IN OUT   (private key in ZG_PRIVATE_KEY)
const { ZgFile, Uploader, Downloader, StorageNode, getFlowContract } = require("@0gfoundation/0g-ts-sdk");
const { ethers } = require("ethers");

(async () => {
  const [rpc, flowAddress, nodeUrl, input, output] = process.argv.slice(2);
  const provider = new ethers.JsonRpcProvider(rpc);
  const signer = new ethers.Wallet(process.env.ZG_PRIVATE_KEY, provider);
  const flow = getFlowContract(flowAddress, signer);
  const node = new StorageNode(nodeUrl);
  const uploader = new Uploader([node], rpc, flow);
  const file = await ZgFile.fromFilePath(input);
  const [result, err] = await uploader.uploadFile(file, { finalityRequired: true, taskSize: 2 });
  if (err !== null) throw err;
  await file.close();
  const downloader = new Downloader([node]);
  const derr = await downloader.downloadFile(result.rootHash, output, true);
  if (derr !== null) throw derr;
  console.log(JSON.stringify({ root: result.rootHash, txSeq: Number(result.txSeq), txHash: result.txHash }));
})().catch((e) => { console.error(e); process.exit(1); });
