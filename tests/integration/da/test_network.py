"""The DA network end to end over real gRPC and a real chain: dispersal, certification,
retrieval, sampling, and every failure the issue names."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest

from tests.integration.explorer.explorer_fixtures import running_explorer
from tests.servers import await_ready
from zgos.chain.client import Chain
from zgos.da.client import DisperserClient, SignerClient
from zgos.da.contracts import BlobStatus
from zgos.da.disperser.disperser import Disperser
from zgos.da.disperser.state import FAILED
from zgos.da.proto import disperser_pb2
from zgos.da.retriever import Retriever
from zgos.da.rpc import RpcError
from zgos.da.signer.signer import SignerIdentity, SignerNode
from zgos.da.signer.store import CellStore
from zgos.da.spec import bls
from zgos.da.spec.blob import MAX_BLOB_BYTES
from zgos.da.spec.encoding import Cell, Encoder, InsufficientCells
from zgos.runtime.access import TOKEN_FILE, read_token
from zgos.runtime.addresses import DEVNET_POLICY, AddressPolicy
from zgos.runtime.netutil import free_port, port_in_use, wait_until

from .conftest import DANetwork, blob_bytes
from .helpers import CERTIFIED, funded_signer, mine


def test_blob_is_certified_on_chain_and_retrieved_exactly(healthy: DANetwork) -> None:
    data = blob_bytes(1)
    reply = healthy.disperse(data)
    assert reply.status in CERTIFIED, reply.reason
    blob_id = bytes(reply.info.blob_header.storage_root)
    record = healthy.da.blob(blob_id)
    assert record.status is BlobStatus.CERTIFIED
    assert Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id) == data
    with DisperserClient(healthy.disperser_target) as client:
        assert client.retrieve(blob_id, record.epoch) == data
    mine(healthy.da.chain, 4)
    with DisperserClient(healthy.disperser_target) as client:
        assert client.status(healthy.last_request_id).status == disperser_pb2.FINALIZED
    report = Retriever(healthy.da, policy=DEVNET_POLICY).sample(blob_id, 24)
    assert report.available and report.verified == 24 and report.confidence > 0.99


def test_signers_at_addresses_the_policy_refuses_are_neither_sent_cells_nor_read(
    healthy: DANetwork, tmp_path: Path,
) -> None:
    """Signers announce their own addresses: a disperser or reader whose policy does not allow
    loopback calls none of this network's signers (all on 127.0.0.1), and says why."""
    strict = AddressPolicy()  # global addresses only, as on a public network
    disperser = Disperser(healthy.da, funded_signer(healthy.da.chain).account, Encoder(workers=0),
                          tmp_path / "disperser", strict)
    try:
        request_id = disperser.submit(blob_bytes(11))
        assert wait_until(lambda: disperser.status(request_id).status != "PROCESSING", 120, 0.1)  # type: ignore[union-attr]
        failed = disperser.status(request_id)
        assert failed is not None and failed.status == FAILED, failed
        assert "not called" in failed.reason and "loopback" in failed.reason, failed.reason
    finally:
        disperser.close()
    certified = healthy.disperse(blob_bytes(12))
    blob_id = bytes(certified.info.blob_header.storage_root)
    with pytest.raises(InsufficientCells) as refused:
        Retriever(healthy.da, policy=strict).retrieve(blob_id)
    assert "loopback" in str(refused.value), refused.value


def test_one_of_four_signers_down_still_certifies(healthy: DANetwork) -> None:
    healthy.stop_signer(2)
    reply = healthy.disperse(blob_bytes(2))
    assert reply.status in CERTIFIED, reply.reason
    down = healthy.nodes[2].identity.address
    assert down in reply.reason and "certified by 3 of 4 signers" in reply.reason
    blob_id = bytes(reply.info.blob_header.storage_root)
    assert Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id) == blob_bytes(2)


def test_more_signers_down_fails_cleanly_with_a_reason_and_no_fee_lost(healthy: DANetwork) -> None:
    healthy.stop_signer(0)
    healthy.stop_signer(3)
    entrance_before = healthy.da.chain.balance(healthy.da.entrance.address)
    reply = healthy.disperse(blob_bytes(3))
    assert reply.status == disperser_pb2.FAILED
    assert "insufficient signatures" in reply.reason and "50.0% of the stake" in reply.reason
    for i in (0, 3):
        assert healthy.nodes[i].identity.address in reply.reason
    assert "fee refunded" in reply.reason
    assert healthy.da.chain.balance(healthy.da.entrance.address) == entrance_before
    dispersal = healthy.disperser.status(healthy.last_request_id.decode())
    assert dispersal is not None
    blob_id = dispersal.blob_id
    record = healthy.da.blob(bytes.fromhex(blob_id))
    assert record.status is BlobStatus.CANCELLED and record.fee == 0


def test_bad_signature_is_excluded_before_aggregation(healthy: DANetwork) -> None:
    honest = healthy.nodes[1]
    wrong_key = SignerIdentity(honest.identity.account, bls.derive_secret_key(b"not the registered key"))
    healthy.start_signer(1, SignerNode(honest.da, wrong_key, honest.store))
    reply = healthy.disperse(blob_bytes(4))
    assert reply.status in CERTIFIED, reply.reason
    assert "invalid BLS signature (excluded)" in reply.reason
    blob_id = bytes(reply.info.blob_header.storage_root)
    logs = healthy.da.chain.get_logs(
        healthy.da.entrance, "BlobCertified", 0, healthy.da.chain.block_number(), {"blobId": blob_id}
    )
    assert honest.identity.address not in logs[0]["args"]["signers"]
    assert len(logs[0]["args"]["signers"]) == 3


def test_cell_with_wrong_proof_is_refused_by_the_signer(healthy: DANetwork) -> None:
    da = healthy.da
    encoded = healthy.encoder.encode(blob_bytes(5))
    submitter = funded_signer(da.chain).account
    submitted = da.submit_blob(submitter, encoded.header)
    blob_id = encoded.header.blob_id(submitter.address)
    assert submitted.blob_id == blob_id
    node = healthy.nodes[0]
    quorum = da.quorum(submitted.epoch)
    cells = encoded.column_cells(quorum.columns(node.identity.address))
    bad = cells[5]
    flipped = bytearray(bad.data)
    flipped[40] ^= 1
    tampered = [*cells[:5], Cell(bad.row, bad.column, bytes(flipped), bad.proof), *cells[6:]]
    with SignerClient(f"127.0.0.1:{healthy.ports[0]}") as client:
        # one bad cell fails the batch check: the request is refused whole, no per-cell search
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*batch KZG check of the \d+ cells failed"):
            client.store_cells(blob_id, submitted.epoch, 0, tampered)
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*assignment.*1 missing"):
            client.store_cells(blob_id, submitted.epoch, 0, cells[1:])
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*not submitted on chain"):
            client.store_cells(bytes(32), submitted.epoch, 0, cells)
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*belongs to epoch"):
            client.store_cells(blob_id, submitted.epoch + 1, 0, cells)
        assert not node.store.has(blob_id)
        signature, signer = client.store_cells(blob_id, submitted.epoch, 0, cells)
    assert signer == node.identity.address
    assert bls.verify(node.identity.pubkey, da.signing_message(blob_id, submitted.epoch), signature)


def test_blob_recovers_from_exactly_half_the_columns_and_fewer_gives_a_clear_error(healthy: DANetwork) -> None:
    data = blob_bytes(6, 200_000)  # two rows
    reply = healthy.disperse(data)
    assert reply.status in CERTIFIED, reply.reason
    blob_id = bytes(reply.info.blob_header.storage_root)
    healthy.stop_signer(0)
    healthy.stop_signer(1)  # equal stakes: the two left hold exactly 64 of 128 columns
    assert Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id) == data
    healthy.stop_signer(2)
    with pytest.raises(InsufficientCells, match=r"cannot be recovered.*connection|UNAVAILABLE"):
        Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id)


def test_sampling_fails_loudly_when_a_signer_withholds_data(
    healthy: DANetwork, chain: Chain, deployment_path: Path, tmp_path: Path,
) -> None:
    """Through the client, and on the explorer's blob page (which samples as a light client)."""
    whole = bytes(healthy.disperse(blob_bytes(8)).info.blob_header.storage_root)
    reply = healthy.disperse(blob_bytes(7))
    blob_id = bytes(reply.info.blob_header.storage_root)
    withholding = healthy.nodes[3]
    # the signer drops the cells it signed for and answers NOT_FOUND
    (withholding.store.root / f"{blob_id.hex()}.cells").unlink()
    report = Retriever(healthy.da, policy=DEVNET_POLICY).sample(blob_id, 64, random.Random(1))
    assert not report.available and report.confidence == 0.0
    assert [f.signer for f in report.failures] == [withholding.identity.address]
    assert "NOT_FOUND" in report.failures[0].reason
    owners = healthy.da.quorum(healthy.da.blob(blob_id).epoch).column_owners
    assert all(owners[c] == 3 for _, c in report.failed_cells)
    # retrieval still succeeds from the other three
    assert Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id) == blob_bytes(7)
    pair = {"DASigners": healthy.da.signers.address, "DAEntrance": healthy.da.entrance.address}
    with running_explorer(tmp_path, chain, deployment_path, pair) as explorer:
        seen = httpx.get(f"{explorer}/api/da/blob/0x{whole.hex()}/sampling", timeout=60).json()
        assert (seen["available"], seen["verified"], seen["samples"]) == (True, 64, 64), seen
        assert seen["confidence"] > 0.99 and seen["failures"] == []
        withheld = httpx.get(f"{explorer}/api/da/blob/0x{blob_id.hex()}/sampling", timeout=60).json()
        assert not withheld["available"] and withheld["verified"] < withheld["samples"], withheld
        assert [f["signer"] for f in withheld["failures"]] == [withholding.identity.address]


def test_retrieval_skips_a_signer_serving_corrupted_cells(healthy: DANetwork) -> None:
    reply = healthy.disperse(blob_bytes(8))
    blob_id = bytes(reply.info.blob_header.storage_root)
    quorum = healthy.da.quorum(healthy.da.blob(blob_id).epoch)
    biggest = max(range(4), key=lambda i: len(quorum.columns(quorum.members[i])))
    path = healthy.nodes[biggest].store.root / f"{blob_id.hex()}.cells"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF  # inside the first cell's data
    path.write_bytes(bytes(raw))
    failures = []
    assert Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id, on_failure=failures.append) == blob_bytes(8)
    assert [f.reason for f in failures] == ["served cells that fail their KZG proofs"]
    report = Retriever(healthy.da, policy=DEVNET_POLICY).sample(blob_id, 128)
    assert not report.available
    assert [f.signer for f in report.failures] == [quorum.members[biggest]]


def test_malformed_grpc_requests_get_clear_errors(healthy: DANetwork) -> None:
    with (DisperserClient(healthy.disperser_target) as stranger,
          pytest.raises(RpcError, match=r"UNAUTHENTICATED.*install token")):
        stranger.disperse(b"pay for me")
    with healthy.client() as client:
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*at least 1 byte"):
            client.disperse(b"")
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*exceeds the maximum"):
            client.disperse(bytes(MAX_BLOB_BYTES + 1))
        with pytest.raises(RpcError, match=r"NOT_FOUND.*unknown request id"):
            client.status(b"\xff\xfe")
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*32 bytes"):
            client.retrieve(b"short", 0)
        with pytest.raises(RpcError, match="NOT_FOUND"):
            client.retrieve(bytes(32), 0)
    with SignerClient(f"127.0.0.1:{healthy.ports[0]}") as signer:
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*32 bytes"):
            signer.get_cells(b"x")
        with pytest.raises(RpcError, match=r"INVALID_ARGUMENT.*column"):
            signer.get_cells(bytes(32), [(0, 500)])
    channel = grpc.insecure_channel(healthy.disperser_target)
    raw = channel.unary_unary("/disperser.Disperser/DisperseBlob")
    with pytest.raises(grpc.RpcError) as garbage:
        raw(b"\xff\xff\xff", timeout=5)
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage.value.details()
    channel.close()
    assert healthy.disperse(blob_bytes(9)).status in CERTIFIED  # still serving


def test_signer_serves_acknowledged_cells_after_restart(healthy: DANetwork) -> None:
    reply = healthy.disperse(blob_bytes(10))
    blob_id = bytes(reply.info.blob_header.storage_root)
    node = healthy.nodes[0]
    reopened = SignerNode(node.da, node.identity, CellStore(node.store.root))
    healthy.start_signer(0, reopened)
    with SignerClient(f"127.0.0.1:{healthy.ports[0]}") as client:
        cells = client.get_cells(blob_id)
    quorum = healthy.da.quorum(healthy.da.blob(blob_id).epoch)
    assert {c.column for c in cells} == set(quorum.columns(node.identity.address))


def test_dispersing_the_same_bytes_twice_reuses_the_certified_blob(healthy: DANetwork) -> None:
    first = healthy.disperse(blob_bytes(11))
    second = healthy.disperse(blob_bytes(11))
    assert second.status in CERTIFIED, second.reason
    assert second.reason == "already certified on chain"
    assert second.info.blob_header.storage_root == first.info.blob_header.storage_root


def test_several_blobs_in_flight_all_get_valid_distinct_certificates(healthy: DANetwork) -> None:
    blobs = [blob_bytes(200 + i) for i in range(4)]
    with healthy.client() as client:
        request_ids = [client.disperse(data) for data in blobs]  # back-to-back, none awaited
        replies = [client.wait(request_id, 90) for request_id in request_ids]
    assert all(r.status in CERTIFIED for r in replies), [r.reason for r in replies]
    blob_ids = [bytes(r.info.blob_header.storage_root) for r in replies]
    assert len(set(blob_ids)) == len(blobs) and len({r.certificate_tx for r in replies}) == len(blobs)
    chain = healthy.da.chain
    for blob_id, reply, data in zip(blob_ids, replies, blobs, strict=True):
        assert healthy.da.blob(blob_id).status is BlobStatus.CERTIFIED  # the contract checked the BLS aggregate
        receipt = chain.w3.eth.get_transaction_receipt(reply.certificate_tx)  # type: ignore[arg-type]
        (event,) = healthy.da.entrance.events.BlobCertified().process_receipt(receipt)
        assert bytes(event["args"]["blobId"]) == blob_id and len(event["args"]["signers"]) == len(healthy.nodes)
        assert healthy.disperser.retrieve(blob_id) == data


def test_acknowledged_dispersal_completes_after_the_disperser_is_killed(
    healthy: DANetwork, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    chain = healthy.da.chain
    (data_dir / "network.json").write_text(json.dumps({"rpc_url": chain.rpc_url, "chain_id": chain.chain_id,
                                                       "outbound_allow": "loopback"}))  # the signers' addresses
    addresses = {"DASigners": healthy.da.signers.address, "DAEntrance": healthy.da.entrance.address}
    (data_dir / "deployment.json").write_text(json.dumps({
        "chainId": chain.chain_id, "deployBlock": 0,
        "contracts": {name: {"address": a, "codeHash": ""} for name, a in addresses.items()},
    }))
    payer = funded_signer(chain).account
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ZGOS_")},
           "ZGOS_PRIVATE_KEY": bytes(payer.key).hex()}
    port = free_port()
    argv = [sys.executable, "-m", "zgos.cli", "--data-dir", str(data_dir), "da", "disperser",
            "--port", str(port), "--workers", "0"]

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await_ready(lambda: port_in_use(port), "the disperser", process=process)
        return process

    first = start()
    data = blob_bytes(12, 150_000)
    token = read_token(data_dir / "da-disperser" / TOKEN_FILE)
    with DisperserClient(f"127.0.0.1:{port}", token=token) as client:
        request_id = client.disperse(data)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = start()
    try:
        with DisperserClient(f"127.0.0.1:{port}") as client:
            assert wait_until(lambda: client.status(request_id).status != disperser_pb2.PROCESSING, 60, 0.2)
            reply = client.status(request_id)
            assert reply.status in CERTIFIED, reply.reason
            blob_id = bytes(reply.info.blob_header.storage_root)
            assert client.retrieve(blob_id, reply.info.blob_header.epoch) == data
    finally:
        second.terminate()
        second.wait(10)
    assert Retriever(healthy.da, policy=DEVNET_POLICY).retrieve(blob_id) == data
