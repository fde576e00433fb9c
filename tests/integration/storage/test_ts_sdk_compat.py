"""Compatibility with 0G's own TypeScript SDK (npm @0gfoundation/0g-ts-sdk 1.2.8), run with node.

`make test` installs the SDK into .tools/0g-ts-sdk from tests/compat/package.json; without node
or the SDK these tests skip and say why.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from eth_account.signers.local import LocalAccount

from tests.integration.storage.conftest import RunningNode
from tests.nodejs import run_node
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.storage.hasher import build_file_tree
from zgos.storage.spec.filetree import FileTree


def test_data_root_equals_the_0g_ts_sdk_root_for_random_sizes(tmp_path: Path) -> None:
    rng = random.Random(0x26)
    sizes = [1, 255, 256, 257, 262_145, 10 * 1024 * 1024] + [rng.randint(1, 10 * 1024 * 1024) for _ in range(6)]
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    theirs = run_node("roots.cjs", *map(str, paths)).split()
    ours = ["0x" + build_file_tree(p).root.hex() for p in paths]
    assert ours == theirs, f"sizes {sizes}"


def test_0g_ts_sdk_uploads_to_zgos_and_downloads_back(
    tmp_path: Path, storage_node: RunningNode, chain: Chain, deployment: Deployment, new_account: LocalAccount
) -> None:
    data = random.Random(7).randbytes(700_001)
    path, out = tmp_path / "in.bin", tmp_path / "out.bin"
    path.write_bytes(data)
    stdout = run_node(
        "upload_download.cjs", chain.rpc_url, deployment.address("Flow"), storage_node.url, str(path), str(out),
        env={"ZG_PRIVATE_KEY": new_account.key.hex()},
    )
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["root"] == "0x" + FileTree.from_bytes(data).root.hex()
    assert out.read_bytes() == data
    record = storage_node.node.store.tx(result["txSeq"])
    assert record is not None and record.finalized
