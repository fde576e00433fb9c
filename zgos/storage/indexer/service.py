"""The indexer's operations, behind both its JSON-RPC methods and its REST gateway.

* ``sharded_nodes()``: 0G's ``{trusted, discovered}`` lists (registry/peers nodes that passed
  the probe are ``trusted``; zgos has no separate discovery node, so ``discovered`` is empty).
* ``file_locations(root)``: the usable nodes that report the file finalized (0G's
  ``indexer_getFileLocations``); every node is asked in parallel.
* ``select_nodes(replicas)``: nodes covering every shard ``replicas`` times (§5.3 step 7).
* ``read(root, scratch)``: the verified bytes for the gateway: a plain file streams from its
  locations segment by segment, each proven before it is passed on; an erasure-coded file is
  downloaded through ``ErasureClient`` (lost segments rebuilt and checked against its data
  root; a record that does not fit the file falls back to the plain download) and then read
  back. With the chain, a file's size is its on-chain size, and nodes describing the file
  otherwise are left out of its locations.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)
from zgos.runtime.outbound import OutboundClient
from zgos.storage.client import FileLocation, StorageClient, StorageError, describes_file
from zgos.storage.contracts import FlowContract
from zgos.storage.ecclient import ErasureClient, Unprovable
from zgos.storage.indexer.directory import NodeDirectory, ShardedNode
from zgos.storage.indexer.models import (
    MAX_REPLICAS,
    BadRequest,
    ErasureJson,
    FileInfoResult,
    ShardedNodeJson,
    ShardedNodesResult,
)
from zgos.storage.spec.shard import select_nodes

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1024 * 1024
PARALLEL_QUERIES = 16
FILE_INFO_DEADLINE_S = 5.0  # one zgs_getFileInfo to one node, total
MAX_FILE_INFO_BYTES = 64 * 1024


class NotFound(ZgError):
    """No usable node knows the file."""


class NotEnoughNodes(ZgError):
    """The usable nodes cannot satisfy the request."""


class Indexer:
    """The operations; every call to a node goes through the outbound guard under ``policy``
    (the nodes' URLs come from the registry)."""

    def __init__(self, directory: NodeDirectory, *, policy: AddressPolicy, workers: int = 4,
                 chain: Chain | None = None, erasure_address: str | None = None,
                 flow_address: str | None = None) -> None:
        self.directory = directory
        self.policy = policy
        self.http = OutboundClient(policy, deadline_s=FILE_INFO_DEADLINE_S, max_response_bytes=MAX_FILE_INFO_BYTES)
        self.workers = workers
        self.chain = chain
        self.erasure_address = erasure_address
        self.flow = FlowContract(chain, flow_address) if chain is not None and flow_address else None

    def close(self) -> None:
        self.http.close()

    def _erasure(self, urls: list[str]) -> ErasureClient:
        flow = self.flow.address if self.flow is not None else None
        return ErasureClient(urls, self.chain, flow, self.erasure_address, workers=self.workers, policy=self.policy)

    def _storage(self, urls: list[str]) -> StorageClient:
        flow = self.flow.address if self.flow is not None else None
        return StorageClient(urls, self.chain, flow, workers=self.workers, policy=self.policy)

    def nodes(self) -> list[ShardedNode]:
        return self.directory.current().nodes

    def sharded_nodes(self) -> ShardedNodesResult:
        return ShardedNodesResult.of(self.nodes())

    def _file_info_on(self, node: ShardedNode, root: bytes) -> dict[str, Any] | None:
        try:
            result = call_jsonrpc(self.http, node.url, "zgs_getFileInfo", ["0x" + root.hex(), True])
        except (JsonRpcUnreachable, JsonRpcNotJson) as exc:
            log.info("node %s did not answer zgs_getFileInfo (%s)", node.url, exc)
            self.directory.recheck(node.url)  # still listed? the next refresh probes it
            return None
        except JsonRpcErrorAnswer:
            return None
        return result if isinstance(result, dict) else None

    def file_infos(self, root: bytes) -> list[tuple[ShardedNode, dict[str, Any]]]:
        """(node, FileInfo) of every usable node that knows ``root`` (with the chain: as the
        chain describes it; a node naming another root or size is left out and logged)."""
        return self._located(root)[0]

    def _located(self, root: bytes) -> tuple[list[tuple[ShardedNode, dict[str, Any]]], int | None]:
        """``file_infos`` and the file's size per the chain (None without one, or if the chain
        has no such file); the chain and the nodes are asked at once."""
        nodes = self.nodes()
        if not nodes:
            return [], None
        with ThreadPoolExecutor(min(PARALLEL_QUERIES, len(nodes)) + 1) as pool:
            first = pool.submit(self.flow.file_of, root) if self.flow is not None else None
            infos = list(pool.map(lambda n: self._file_info_on(n, root), nodes))
            size = None if first is None or (submitted := first.result()) is None else submitted.size
        found = [(node, info) for node, info in zip(nodes, infos, strict=True) if info is not None]
        if size is None:
            return found, None
        agreeing = []
        for node, info in found:
            if describes_file(FileLocation(node.url, info), root, size):
                agreeing.append((node, info))
            else:
                log.warning("node %s describes 0x%s unlike the chain (%d bytes): left out", node.url, root.hex(), size)
        return agreeing, size

    def file_locations(self, root: bytes) -> list[ShardedNode]:
        return [node for node, info in self.file_infos(root) if info.get("finalized")]

    def file_info(self, root: bytes) -> FileInfoResult:
        """What the network knows about ``root``: the tx, and which nodes hold it."""
        infos = self.file_infos(root)
        if not infos:
            raise NotFound(f"no storage node knows a file with root 0x{root.hex()}")
        finalized = [(n, i) for n, i in infos if i.get("finalized")]
        record = None
        if self.chain is not None and self.erasure_address:
            with self._erasure([node.url for node, _ in infos]) as ec:
                record = ec.registry.record_of(root) if ec.registry is not None else None
        return FileInfoResult(
            root="0x" + root.hex(),
            tx=(finalized or infos)[0][1]["tx"],
            finalized=bool(finalized),
            locations=[ShardedNodeJson.of(n) for n, _ in finalized],
            pending=[ShardedNodeJson.of(n) for n, i in infos if not i.get("finalized")],
            ec=ErasureJson.of(record) if record is not None else None,
        )

    def select_nodes(self, replicas: int) -> list[ShardedNode]:
        if not 1 <= replicas <= MAX_REPLICAS:
            raise BadRequest(f"replicas must be in 1..{MAX_REPLICAS}, got {replicas}")
        nodes = self.nodes()
        chosen = select_nodes([n.config for n in nodes], replicas)
        if chosen is None:
            raise NotEnoughNodes(f"the {len(nodes)} usable nodes do not cover every shard {replicas} time(s)",
                                 "start more storage nodes or ask for fewer replicas")
        return [nodes[i] for i in chosen]

    def read(self, root: bytes, scratch: Path) -> tuple[int, Generator[bytes, None, None]]:
        """Size and verified bytes of ``root``, as chunks for the gateway to pass on.

        A file streams segment by segment, each chunk sent only after its own proof checked
        out. An erasure-coded file whose segments are not all held streams too, its missing
        segments rebuilt and proven a window at a time (``ErasureClient.stream``); only if that
        cannot start (its stripes cannot be proven piece by piece) is it rebuilt into
        ``scratch`` first and read back.
        """
        infos, size = self._located(root)
        if finalized := [FileLocation(node.url, info) for node, info in infos if info.get("finalized")]:
            try:
                return self._stream(root, finalized, size)
            except StorageError as exc:
                if not self._erasure_coded(root):
                    raise
                log.info("0x%s cannot stream (%s): rebuilding it from its erasure coding", root.hex(), exc.message)
        if self._erasure_coded(root):
            try:
                return self._stream_erasure_coded(root)
            except (StorageError, Unprovable) as exc:
                log.info("0x%s cannot be rebuilt as a stream (%s): rebuilding it whole", root.hex(), exc)
            with self._erasure([n.url for n in self.nodes()]) as ec:
                out = scratch / "file"
                return ec.download(root, out), _read_chunks(out)
        raise NotFound(f"no storage node holds a finalized file with root 0x{root.hex()}")

    def _stream_erasure_coded(self, root: bytes) -> tuple[int, Generator[bytes, None, None]]:
        """``ErasureClient.stream`` with its first window proven before anything is sent (so a
        stripe that cannot be rebuilt there still leaves the whole-file path open)."""
        ec = self._erasure([n.url for n in self.nodes()])
        try:
            size, chunks = ec.stream(root)
            first = next(chunks, b"")
        except BaseException:
            ec.close()
            raise

        def owned() -> Generator[bytes, None, None]:
            try:
                yield first
                yield from chunks
            finally:
                ec.close()

        return size, owned()

    def _erasure_coded(self, root: bytes) -> bool:
        if self.chain is None or not self.erasure_address or not self.nodes():
            return False
        with self._erasure([n.url for n in self.nodes()]) as ec:
            return ec.registry is not None and ec.registry.record_of(root) is not None

    def _stream(self, root: bytes, finalized: list[FileLocation],
                size: int | None) -> tuple[int, Generator[bytes, None, None]]:
        """The file as ``StorageClient.stream`` reads it from the nodes ``finalized`` (found
        already: they are not asked again)."""
        client = self._storage([location.node for location in finalized])
        try:
            # a chain without the file: the client asks it again, and says why it cannot download
            unknown = size is None and self.flow is not None
            located = None if unknown else client.downloads.check_locations(root, finalized, size)
            location, chunks = client.stream(root, located=located)
        except BaseException:
            client.close()
            raise

        def owned() -> Generator[bytes, None, None]:
            try:
                yield from chunks
            finally:
                client.close()

        return location.size, owned()


def _read_chunks(path: Path) -> Generator[bytes, None, None]:
    with path.open("rb") as source:
        while chunk := source.read(READ_CHUNK_BYTES):
            yield chunk
