"""Run a KV node as a process of its own, so a test can ``kill -9`` it:
``python -m tests.integration.kv.kvnode_process CONFIG.json`` builds ``KvNodeConfig`` from the
JSON file and runs ``KvNode`` until it is signalled, logging each replayed transaction."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from zgos.kv.node.app import KvNode, KvNodeConfig
from zgos.kv.node.replayer import ReplayConfig

# Small store transactions, so that a kill lands between two of them mid-replay.
KILL_BATCH_ENTRIES = 8


def config_json(state_dir: Path, rpc_url: str, flow: str, storage_url: str, port: int,
                streams: frozenset[bytes], first_block: int) -> dict[str, Any]:
    return {"state_dir": str(state_dir), "rpc_url": rpc_url, "flow": flow, "storage": storage_url, "port": port,
            "streams": [s.hex() for s in sorted(streams)], "first_block": first_block,
            "batch_entries": KILL_BATCH_ENTRIES}


def main(path: str) -> None:
    value = json.loads(Path(path).read_text())
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
    replay = ReplayConfig(frozenset(bytes.fromhex(s) for s in value["streams"]), first_block=value["first_block"],
                          poll_s=0.05, data_deadline_s=10.0,
                          batch_entries=value.get("batch_entries", 256))
    config = KvNodeConfig(Path(value["state_dir"]), value["rpc_url"], value["flow"], (value["storage"],), replay,
                          port=value["port"])
    KvNode(config).run(lambda: print("kv node ready", flush=True))


if __name__ == "__main__":
    main(sys.argv[1])
