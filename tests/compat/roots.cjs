// Print the 0G TS SDK's data root of every file named on the command line, one per line.
const { ZgFile } = require("@0gfoundation/0g-ts-sdk");

(async () => {
  for (const path of process.argv.slice(2)) {
    const file = await ZgFile.fromFilePath(path);
    const [tree, err] = await file.merkleTree();
    if (err !== null) throw err;
    console.log(tree.rootHash());
    await file.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
