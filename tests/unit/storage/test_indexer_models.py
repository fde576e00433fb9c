"""The indexer's edge models: params validated once with the indexer's error codes and messages,
results dumped with 0G's keys in 0G's order."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.runtime.jsonrpc import INVALID_PARAMS, RpcError, parse_params
from zgos.storage.discovery import SkippedNode
from zgos.storage.indexer.directory import ShardedNode, Snapshot
from zgos.storage.indexer.models import (
    MAX_REPLICAS,
    NodeStatusResult,
    ReplicasParams,
    RootParams,
    ShardedNodeJson,
    ShardedNodesResult,
)
from zgos.storage.spec.shard import ShardConfig

NODE = ShardedNode("http://127.0.0.1:5678", ShardConfig(1, 4), latency_ms=12, since=1_700_000_000, source="--peers")


@given(st.binary(min_size=32, max_size=32), st.sampled_from(["0x", "0X", ""]))
def test_a_root_param_is_32_bytes_of_hex_with_or_without_0x(root: bytes, prefix: str) -> None:
    assert parse_params(RootParams, [prefix + root.hex(), "ignored extra"]).root == root


@pytest.mark.parametrize("bad", ["0x12", "zz" * 32, 7, None, ["0x" + "ab" * 32], True])
def test_a_bad_root_param_is_invalid_params_naming_the_form(bad: object) -> None:
    with pytest.raises(RpcError) as raised:
        parse_params(RootParams, [bad])
    assert raised.value.code == INVALID_PARAMS
    assert raised.value.message == "root is not a 32-byte hex string (a root is 0x followed by 64 hex digits)"


def test_a_missing_root_param_is_invalid_params_naming_it() -> None:
    with pytest.raises(RpcError) as raised:
        parse_params(RootParams, [])
    assert (raised.value.code, raised.value.message) == (INVALID_PARAMS, "missing parameter 0 (root)")


@given(st.one_of(st.integers(), st.booleans(), st.text(max_size=4), st.floats(allow_nan=False), st.none()))
def test_replicas_is_an_integer_in_range_or_invalid_params(value: object) -> None:
    valid = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_REPLICAS
    try:
        assert parse_params(ReplicasParams, [value]).replicas == value and valid
    except RpcError as exc:
        assert not valid
        assert (exc.code, exc.message) == (INVALID_PARAMS, f"replicas must be an integer in 1..{MAX_REPLICAS}")


def test_replicas_defaults_to_one() -> None:
    assert parse_params(ReplicasParams, []).replicas == 1


def test_a_sharded_node_is_0gs_shape_byte_for_byte() -> None:
    encoded = json.dumps(ShardedNodeJson.of(NODE).to_json(), separators=(",", ":"))
    assert encoded == '{"url":"http://127.0.0.1:5678","config":{"shardId":1,"numShard":4},"latency":12,"since":1700000000}'
    assert ShardedNodesResult.of([NODE]).to_json() == {"trusted": [json.loads(encoded)], "discovered": []}


def test_node_status_lists_usable_and_skipped_nodes_with_the_snapshot_age() -> None:
    skipped = SkippedNode("http://127.0.0.1:9", "--peers", "unreachable", score=-3, failures=2, retry_in_s=4.26)
    status = NodeStatusResult.of(Snapshot([NODE], [skipped], refreshed_at=100.9), now=102.1234).to_json()
    assert list(status) == ["nodes", "skipped", "refreshedAt", "ageSecs"]
    assert status["skipped"] == [skipped.to_json()]
    assert (status["refreshedAt"], status["ageSecs"]) == (100, round(102.1234 - 100.9, 3))
