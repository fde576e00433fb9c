"""A storage node that lies about a file's size: the size comes from the chain (Flow.fileOf),
so the lie can neither truncate nor pad a download that reports itself verified, nor hang it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from tests.integration.clirunner import zg
from tests.integration.storage.conftest import RunningNode
from tests.integration.storage.httpproxy import StorageNodeProxy, lie_about_size
from tests.integration.storage.indexer_fixtures import start_indexer
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.runtime.datadir import DataDir
from zgos.storage.client import StorageClient, StorageError
from zgos.storage.contracts import FlowContract

SIZE = 5_000  # 20 sectors: any length in (4,608, 5,120] has the same data root
LIES = (4_900, 5_100, 1 << 40)  # shorter, longer (same root), 1 TiB
FAIL_FAST_S = 15.0


def test_a_lying_first_node_cannot_truncate_or_pad_a_verified_file(
    tmp_path: Path, storage_node: RunningNode, chain: Chain, deployment: Deployment, devnet_dir: DataDir,
    new_account: LocalAccount,
) -> None:
    flow = deployment.address("Flow")
    data = os.urandom(SIZE)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    with StorageClient([storage_node.url], chain, flow, new_account) as uploader:
        root = uploader.upload(path).root
    first = FlowContract(chain, flow).file_of(root)
    assert first is not None and (first.submitter, first.size) == (new_account.address, SIZE)
    honest = storage_node.url
    for lie in LIES:
        liar = StorageNodeProxy(honest, lie_about_size(lie))
        try:
            assert httpx.post(liar.url, json={"jsonrpc": "2.0", "id": 1, "method": "zgs_getFileInfo",
                                              "params": ["0x" + root.hex(), True]}).json()["result"]["tx"]["size"] == lie
            out = tmp_path / f"out-{lie}.bin"
            with StorageClient([liar.url, honest], chain, flow, timeout_s=10) as client:
                assert client.download(root, out).size == SIZE
                assert out.read_bytes() == data, f"exact despite a first node claiming {lie} bytes"
                assert client.scores.banned(liar.url) and client.scores.score(liar.url) < 0, "the liar is scored down"
                file, chunks = client.stream(root)
                assert file.size == SIZE and b"".join(chunks) == data

            alone = tmp_path / f"alone-{lie}.bin"
            started = time.monotonic()
            with StorageClient([liar.url], chain, flow, timeout_s=10) as client, \
                    pytest.raises(StorageError, match=f"no node holds a finalized copy .*{SIZE} bytes per the chain"):
                client.download(root, alone)
            assert time.monotonic() - started < FAIL_FAST_S and not alone.exists(), "fails clearly, at once, OUT unwritten"

            if lie == LIES[0]:  # the CLI as a user runs it (the reviewer's 4,900-byte lie)
                cli_out = tmp_path / "cli.bin"
                done = zg(devnet_dir.root, "storage", "download", "0x" + root.hex(), str(cli_out),
                          "--node", liar.url, "--node", honest)
                assert done.returncode == 0 and f"downloaded {SIZE} bytes" in done.stdout, done.stdout + done.stderr
                assert cli_out.read_bytes() == data
                refused = zg(devnet_dir.root, "storage", "download", "0x" + root.hex(), str(tmp_path / "no.bin"),
                             "--node", liar.url)
                assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stdout + refused.stderr
                assert "no node holds a finalized copy" in refused.stdout + refused.stderr
                assert not (tmp_path / "no.bin").exists()

            gateway = start_indexer(tmp_path / f"gateway-{lie}", chain, deployment, peers=(liar.url, honest), registry=False)
            try:
                served = httpx.get(gateway.url + "/file", params={"root": "0x" + root.hex()}, timeout=60)
                assert served.status_code == 200 and served.content == data, "the gateway serves the exact file"
                info = httpx.get(f"{gateway.url}/file/info/0x{root.hex()}", timeout=30).json()
                assert info["tx"]["size"] == SIZE and [n["url"] for n in info["locations"]] == [honest]
            finally:
                gateway.stop()

            with StorageClient([liar.url, honest], timeout_s=10) as blind, pytest.raises(StorageError, match="disagree"):
                blind.download(root, tmp_path / "blind.bin")  # no chain: disagreeing nodes are not guessed between
        finally:
            liar.stop()
    assert not list(tmp_path.glob("*.part")), "no partial file left behind"


def test_a_lying_lone_node_cannot_make_a_chainless_download_hang(
    tmp_path: Path, storage_node: RunningNode, chain: Chain, deployment: Deployment, new_account: LocalAccount,
) -> None:
    """Without a chain a lone node's size cannot be checked against anything but the root: a
    size the data root's tree cannot have fails on the last segment, before anything is allocated."""
    data = os.urandom(SIZE)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    with StorageClient([storage_node.url], chain, deployment.address("Flow"), new_account) as uploader:
        root = uploader.upload(path).root
    liar = StorageNodeProxy(storage_node.url, lie_about_size(1 << 40))
    try:
        started = time.monotonic()
        with StorageClient([liar.url], timeout_s=10) as blind, pytest.raises(StorageError, match=r"download of .* failed"):
            blind.download(root, tmp_path / "out.bin")
        assert time.monotonic() - started < FAIL_FAST_S and not (tmp_path / "out.bin").exists()
    finally:
        liar.stop()
