"""0G's ``indexer_*`` JSON-RPC methods: each validates its params once into a model
(``zgos.storage.indexer.models``), calls the indexer, and answers with a result model's JSON."""

from __future__ import annotations

from typing import Any

from zgos.runtime.jsonrpc import Method, Params, parse_params
from zgos.storage.indexer.models import ReplicasParams, RootParams, sharded_nodes_json
from zgos.storage.indexer.service import Indexer

# Methods that ask every usable storage node: they cost one unit of the client's rate limit.
FAN_OUT_METHODS = frozenset({"indexer_getFileLocations", "indexer_getFileInfo"})


def indexer_methods(indexer: Indexer) -> dict[str, Method]:
    """0G's ``indexer_*`` methods (names, param order and result shapes as 0G's indexer)."""

    def get_sharded_nodes(params: Params) -> Any:
        return indexer.sharded_nodes().to_json()

    def get_file_locations(params: Params) -> Any:
        return sharded_nodes_json(indexer.file_locations(parse_params(RootParams, params).root))

    def select_nodes(params: Params) -> Any:
        return sharded_nodes_json(indexer.select_nodes(parse_params(ReplicasParams, params).replicas))

    def get_file_info(params: Params) -> Any:
        return indexer.file_info(parse_params(RootParams, params).root).to_json()

    return {
        "indexer_getShardedNodes": get_sharded_nodes,
        "indexer_getFileLocations": get_file_locations,
        "indexer_selectNodes": select_nodes,
        "indexer_getFileInfo": get_file_info,
    }
