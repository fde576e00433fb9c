"""The storage node's edges as pure parts: the one inner-root rule, the JSON-RPC param and
result models (0G's names and the node's error messages) and the RPC's extension hook."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgos.runtime.jsonrpc import INVALID_PARAMS, MAX_INT64, RpcError, parse_params
from zgos.storage.node.node import NodeConfig, StorageNode
from zgos.storage.node.rpc import NodeRpc
from zgos.storage.node.rpcmodels import (
    CheckFinalizedParams,
    FileInfoParams,
    IndexByTxSeqParams,
    NetworkIdentity,
    ProtocolVersion,
    SectorProofParams,
    SegmentsByTxSeqParams,
)
from zgos.storage.spec.flow import compute_sector_data_root
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, compute_leaf_hashes, compute_promote_root

ROOT = "0x" + "ab" * 32


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 11), st.data())
def test_the_inner_root_of_sector_data_is_the_promote_root_of_its_zero_padded_leaves(height: int, data: st.DataObject) -> None:
    sectors = 1 << height
    flat = os.urandom(data.draw(st.integers(0, sectors * BYTES_PER_SECTOR)))
    asked: list[int] = []

    def read(first: int, count: int) -> bytes:
        asked.append(count)
        return flat[first * BYTES_PER_SECTOR : (first + count) * BYTES_PER_SECTOR]

    leaves = compute_leaf_hashes(flat) if flat else []
    expected = compute_promote_root(leaves + [compute_leaf_hashes(bytes(BYTES_PER_SECTOR))[0]] * (sectors - len(leaves)))
    assert compute_sector_data_root(read, 0, height) == expected
    assert max(asked) <= 1024, "read at most one segment at a time"


def invalid(model: type, params: list[object]) -> str:
    with pytest.raises(RpcError) as caught:
        parse_params(model, params)
    assert caught.value.code == INVALID_PARAMS
    return caught.value.message


def test_rpc_params_are_checked_at_the_edge_with_the_node_error_messages() -> None:
    assert invalid(IndexByTxSeqParams, [1]) == "missing parameter 1 (index)"
    assert invalid(IndexByTxSeqParams, [True, 0]) == f"txSeq must be an integer in 0..{MAX_INT64}"
    assert invalid(IndexByTxSeqParams, [MAX_INT64 + 1, 0]) == f"txSeq must be an integer in 0..{MAX_INT64}"
    assert invalid(FileInfoParams, ["0x12"]) == "root is not a 32-byte hex string"
    assert invalid(FileInfoParams, [ROOT, "yes"]) == "needAvailable must be a boolean"
    assert invalid(SectorProofParams, [3, "nope"]) == "flowRoot is not a 32-byte hex string"
    assert invalid(SegmentsByTxSeqParams, [{}, 1]) == "segments must be an array"
    assert "segment must be an object" in invalid(SegmentsByTxSeqParams, [[1], 1])
    params = parse_params(IndexByTxSeqParams, [7, 2, "ignored"])
    assert (params.tx_seq, params.index) == (7, 2)
    assert parse_params(CheckFinalizedParams, [ROOT]).tx_seq_or_root == bytes.fromhex("ab" * 32)
    assert parse_params(CheckFinalizedParams, [5]).tx_seq_or_root == 5
    assert parse_params(SectorProofParams, [5]).flow_root is None


def test_rpc_results_keep_0g_field_names() -> None:
    identity = NetworkIdentity(chain_id=31337, flow_address="0xF", p2p_protocol_version=ProtocolVersion(major=0, minor=4, build=0))
    assert list(identity.to_json()) == ["chainId", "flowAddress", "p2pProtocolVersion"]


def test_parts_beside_the_node_extend_its_rpc_through_the_hook_never_by_override(tmp_path: Path) -> None:
    node = StorageNode(NodeConfig(tmp_path, "http://127.0.0.1:9", "0x" + "00" * 20, 31337))
    try:
        rpc = NodeRpc(node)
        rpc.add_methods({"miner_getStatus": lambda params: {"running": False}})
        rpc.add_status("miner", lambda: {"running": False})
        status = rpc.methods["zgs_getStatus"]([])
        assert list(status) == ["connectedPeers", "logSyncHeight", "logSyncBlock", "nextTxSeq", "networkIdentity", "miner"]
        assert status["networkIdentity"]["p2pProtocolVersion"] == {"major": 0, "minor": 4, "build": 0}
        assert "miner" not in rpc.node_status().to_json(), "GET /health: the node's own status"
        with pytest.raises(ValueError, match="already served"):
            rpc.add_methods({"zgs_getStatus": lambda params: {}})
        with pytest.raises(ValueError, match="already has"):
            rpc.add_status("nextTxSeq", lambda: 0)
    finally:
        node.prober.close()
