"""INFT transfers (issue 16, Performance), each against a baseline measured in the same run:

* a transfer of a ``AGENT_MIB`` MiB agent end to end (oracle re-encryption with a 2-of-3 proof,
  the receiver's check, ``iTransferFrom``): its time, and its gas against a plain ERC-721
  ``transferFrom`` of a token without data;
* one oracle's re-encryption (download, decrypt, encrypt, upload) against a plain download
  plus upload of the same number of bytes (goal >= 0.5x the speed, i.e. <= 2x the time).
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from bench.bench_storage import _data_dir, _file, _node
from bench.harness import bench_chain, report
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.registry import NodeRegistry
from zgos.core.signatures import sign_digest
from zgos.inft.client import InftClient, pubkey_of
from zgos.inft.contracts import InftContracts, devnet_oracles
from zgos.inft.oracle.app import OracleConfig, OracleService
from zgos.inft.oracle.messages import ReencryptRequest
from zgos.inft.spec.keys import seal
from zgos.inft.spec.proofs import compute_request_digest
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.netutil import free_port
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import StorageClient
from zgos.storage.encrypted import new_ephemeral_secret

AGENT_MIB = int(os.environ.get("ZGOS_BENCH_INFT_MIB", "10"))
RUNS = 3
LOOPBACK = AddressPolicy(allow_loopback=True)


def _funded(chain: Chain) -> LocalAccount:
    account: LocalAccount = Account.create()
    chain.transact(devnet_role("deployer"), to=account.address, value=100 * 10**18)
    return account


def main() -> None:
    print(f"load average: {os.getloadavg()[0]:.2f}", flush=True)
    with bench_chain(block_time_s=0.2) as bc, tempfile.TemporaryDirectory(prefix="zgos-bench-inft-") as tmp:
        work = Path(tmp)
        data_dir = _data_dir(bc, work / "data")
        port = free_port()
        node = _node(data_dir, "storage-0", port, work / "node.log")
        url = f"http://127.0.0.1:{port}"
        d = bc.deployment
        oracles = [OracleService(OracleConfig(work / f"oracle-{i}", d.address("AgentNFT"),
                                              d.address("INFTVerifier"), d.address("NodeRegistry"), d.address("Flow"),
                                              (url,), LOOPBACK, port=free_port()), account, bc.chain)
                   for i, account in enumerate(devnet_oracles())]
        for oracle in oracles:
            oracle.start()
        try:
            owner = _funded(bc.chain)
            client = InftClient(InftContracts.from_deployment(bc.chain, d), NodeRegistry(bc.chain, d.address("NodeRegistry")),
                                StorageClient([url], bc.chain, d.address("Flow"), owner), owner,
                                OutboundClient(LOOPBACK, deadline_s=900), work, d.deploy_block)
            bench_transfer(client, work)
            bench_reencryption(client, oracles[0], work)
        finally:
            for oracle in oracles:
                oracle.close()
            node.terminate()
            node.wait()


def bench_transfer(client: InftClient, work: Path) -> None:
    agent = _file(work, "agent.bin", AGENT_MIB)
    token = client.mint([(agent, "weights")])
    receiver: LocalAccount = Account.create()
    start = time.perf_counter()
    offer = client.offer(token, pubkey_of(receiver))
    access = client.accept(offer, receiver)
    receipt = client.transfer(offer, access)
    seconds = time.perf_counter() - start
    plain = client.contracts.mint_plain(client.account, client.account.address)
    plain_receipt = client.contracts.chain.transact(client.account, client.contracts.nft.functions.transferFrom(
        client.account.address, receiver.address, plain))
    print(f"transfer of a {AGENT_MIB} MiB agent end to end: {seconds:.2f} s "
          f"({AGENT_MIB * 1.048576 / seconds:.1f} MB/s)", flush=True)
    report("iTransferFrom gas vs a plain ERC-721 transferFrom", receipt.gas_used, plain_receipt.gas_used, "gas")


def bench_reencryption(client: InftClient, lead: OracleService, work: Path) -> None:
    """The lead's own work (no endorsement) vs a plain download + upload of as many bytes."""
    ours, base = [], []
    for run in range(RUNS):
        agent = _file(work, f"agent-{run}.bin", AGENT_MIB)
        token = client.mint([(agent, "weights")])
        old = client.contracts.datas_of(token)[0].data_hash
        key, nonce, receiver = client.keys_of(token)[0], secrets.token_bytes(32), Account.create()
        digest = compute_request_digest(client.contracts.domain(), token, old, pubkey_of(receiver), nonce)
        request = ReencryptRequest(token, old, pubkey_of(receiver), nonce,
                                   {lead.account.address: seal(lead.work.pubkey, key, new_ephemeral_secret(), os.urandom(16))},
                                   sign_digest(bytes(client.account.key), digest))
        start = time.perf_counter()
        lead.work.reencrypt(request, [], 1, lambda peer, e: b"")
        ours.append(time.perf_counter() - start)
        plain = _file(work, f"plain-{run}.bin", AGENT_MIB)
        start = time.perf_counter()
        root = client.storage.upload(plain).root
        _, chunks = client.storage.stream(root)
        with (work / f"copy-{run}").open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        base.append(time.perf_counter() - start)
    mb = AGENT_MIB * 1.048576
    report(f"oracle re-encryption of {AGENT_MIB} MiB (MB/s, median of {RUNS}) vs a plain upload + download",
           mb / statistics.median(ours), mb / statistics.median(base), "MB/s", ">= 0.5x")
