"""Two devnets on one machine: one on the default ports, one on another chain port. A command
run with the second one's data dir finds every service through that data dir (its network.json,
or its chain), never through a default port, where the first one listens (issue 14)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.integration.clirunner import NO_TIMEOUT, devnet_chain_port, devnet_up, zg
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import load_deployment
from zgos.compute.contracts import ComputeContracts
from zgos.compute.finetune.contracts import FineTuningMarket
from zgos.da.contracts import BlobStatus, DAContracts, UnknownBlob
from zgos.devnet.services import devnet_services
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import port_in_use, wait_until
from zgos.runtime.ports import CHAIN_PORT
from zgos.runtime.service import DevnetOptions
from zgos.storage.contracts import FlowContract

# The first devnet holds the default ports a command would wrongly dial: the chain's and the DA
# disperser's (the one seen taken, issue 14). Storage nodes and providers are found on the chain.
FIRST = DevnetOptions(only=("da",), da_signers=1)
# The second runs the fewest services every client command family needs: storage (for storage,
# provenance and fine-tuning datasets), the KV node (kv pulls in storage) and DA; compute and
# fine-tuning clients need only the chain.
SECOND_FLAGS = ("--only", "kv,da", "--da-signers", "1", "--no-mine")
ZERO_G_WEI = 10**18


@pytest.fixture
def first(tmp_path: Path) -> Iterator[Path]:
    """A devnet on the default ports, as `zg devnet up` starts it with no --chain-port."""
    busy = [port for s in devnet_services(FIRST) if (port := urlparse(s.url).port) and port_in_use(port)]
    if busy:
        pytest.skip(f"default ports {busy} are held by another program: no devnet can start on them")
    root = tmp_path / "first"
    try:
        up = zg(root, "devnet", "up", "--detach", "--block-time", "0.2", "--only", ",".join(FIRST.only),
                "--da-signers", str(FIRST.da_signers), timeout=NO_TIMEOUT)
        assert up.returncode == 0, up.stdout + up.stderr
        yield root
    finally:
        zg(root, "devnet", "down")


@pytest.fixture
def second(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "second"
    try:
        up = devnet_up(root, devnet_chain_port(), *SECOND_FLAGS)
        assert up.returncode == 0, up.stdout + up.stderr
        yield root
    finally:
        zg(root, "devnet", "down")


def chain_of(root: Path) -> Chain:
    return Chain(DataDir(root).rpc_url())


@pytest.mark.slow
def test_with_two_devnets_every_client_command_run_with_the_second_data_dir_reaches_only_the_second(
        first: Path, second: Path, tmp_path: Path) -> None:
    chains = {"first": chain_of(first), "second": chain_of(second)}
    assert urlparse(chains["first"].rpc_url).port == CHAIN_PORT != urlparse(chains["second"].rpc_url).port
    # One deployer, one plan: the same contract addresses on both chains, so a command that
    # reached the wrong chain would leave its mark at the addresses read below.
    addresses = load_deployment(second / "deployment.json").addresses
    assert load_deployment(first / "deployment.json").addresses == addresses

    # zg storage: the upload is submitted to the second chain's Flow, not the first's
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(20_000))
    upload = zg(second, "storage", "upload", str(path))
    assert upload.returncode == 0, upload.stdout + upload.stderr
    root = bytes.fromhex(next(line.split()[1] for line in upload.stdout.splitlines() if line.startswith("root"))[2:])
    flows = {name: FlowContract(chain, addresses["Flow"]) for name, chain in chains.items()}
    assert flows["second"].file_of(root) is not None and flows["first"].file_of(root) is None

    # zg kv: the write goes to the second chain's Flow and is read back from the second's KV node
    submissions = {name: flow.num_submissions() for name, flow in flows.items()}
    kv_set = zg(second, "kv", "set", "demo", "k", "v")
    assert kv_set.returncode == 0 and "Commit" in kv_set.stdout, kv_set.stdout + kv_set.stderr
    assert {name: flow.num_submissions() for name, flow in flows.items()} == {
        "first": submissions["first"], "second": submissions["second"] + 1}
    assert zg(second, "kv", "get", "demo", "k").stdout == "v\n"
    assert zg(first, "kv", "status").returncode == 1  # the first runs no KV node: never a default port

    # zg provenance: the root's lineage is the second chain's (the first never saw the root)
    shown = zg(second, "provenance", "show", "0x" + root.hex(), "--json")
    assert shown.returncode == 0 and devnet_role("user").address.lower() in shown.stdout.lower(), shown.stderr
    assert zg(first, "provenance", "show", "0x" + root.hex()).returncode == 1

    # zg da: the second devnet's disperser certifies the blob on the second chain
    da = {name: DAContracts.from_addresses(chain, addresses) for name, chain in chains.items()}
    assert wait_until(lambda: len(da["second"].quorum(da["second"].current_epoch()).members) == 1, 30, 0.2)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(5_000))
    put = zg(second, "da", "put", str(blob))
    assert put.returncode == 0, put.stdout + put.stderr
    blob_id = bytes.fromhex(re.search(r"blob 0x([0-9a-f]{64}) (CONFIRMED|FINALIZED)", put.stdout).group(1))  # type: ignore[union-attr]
    assert da["second"].blob(blob_id).status == BlobStatus.CERTIFIED
    with pytest.raises(UnknownBlob):
        da["first"].blob(blob_id)

    # zg compute: the deposit lands in the second chain's ledger only
    user = devnet_role("user").address
    ledgers = {name: ComputeContracts.from_deployment(chain, load_deployment(second / "deployment.json"))
               for name, chain in chains.items()}
    before = {name: ledger.available(user) for name, ledger in ledgers.items()}
    deposit = zg(second, "compute", "deposit", "2")
    assert deposit.returncode == 0, deposit.stdout + deposit.stderr
    assert ledgers["second"].available(user) == before["second"] + 2 * ZERO_G_WEI
    assert ledgers["first"].available(user) == before["first"]

    # zg finetune: the market it lists is the second chain's (a provider registered there only)
    market = FineTuningMarket(chains["second"], addresses["FineTuningServing"])
    market.add_or_update_service(devnet_role("finetune-provider"), "http://127.0.0.1:9/only-on-the-second", 1,
                                 4096, 1000, [bytes(32)])
    listed = zg(second, "finetune", "models")
    assert listed.returncode == 0 and "only-on-the-second" in listed.stdout, listed.stdout + listed.stderr
    assert "only-on-the-second" not in zg(first, "finetune", "models").stdout
