"""Discovery rounds that scale (issue 19): a node probes only the peers of its shard, and the
indexer's prober re-probes a node that answered only when it is stale, its claim changed, or a
call to it failed. Against a real JSON-RPC server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zgos.runtime.addresses import DEVNET_POLICY
from zgos.storage.discovery import Candidate, Prober, useful_candidates
from zgos.storage.spec.shard import ShardConfig

REPROBE_S = 30.0


class _ShardNode(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).calls += 1
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {"shardId": 0, "numShard": 1}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node_url() -> Iterator[str]:
    _ShardNode.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShardNode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_indexer_prober_reprobes_a_node_only_when_stale_rechecked_or_its_claim_changes(node_url: str) -> None:
    now = [0.0]
    prober = Prober(DEVNET_POLICY, clock=lambda: now[0], reprobe_s=REPROBE_S)
    entry = Candidate(node_url, ShardConfig(0, 1), "registry (operator 0x1)")
    try:
        rounds = []
        for step in ("first", "quiet", "recheck", "quiet", "stale", "claim"):
            if step == "recheck":
                prober.recheck(node_url)
            now[0] += REPROBE_S + 1 if step == "stale" else 1
            claimed = ShardConfig(0, 2) if step == "claim" else entry.claimed
            found = prober.run([Candidate(node_url, claimed, entry.source)])
            rounds.append((_ShardNode.calls, len(found.usable)))
    finally:
        prober.close()
    assert [calls for calls, _ in rounds] == [1, 1, 2, 2, 3, 4]
    assert [usable for _, usable in rounds[:-1]] == [1] * 5  # trusted between probes
    assert rounds[-1][1] == 0  # announced 0/2 but serves 0/1: skipped


def test_a_node_probes_only_registry_peers_whose_shard_intersects_its_own() -> None:
    found = [Candidate(f"http://n{i}", ShardConfig(i, 4), "registry") for i in range(4)]
    found += [Candidate("http://static", None, "--peers"), Candidate("http://full", ShardConfig(0, 1), "registry")]
    kept = [c.url for c in useful_candidates(found, ShardConfig(1, 2))]
    assert kept == ["http://n1", "http://n3", "http://static", "http://full"]
