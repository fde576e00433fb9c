"""``StorageClient``: upload files to zgos storage nodes and download them back, verified.

Upload (storage.md §5.3, improved): compute the file tree (all cores), skip the transaction if
a node already knows a file with that root and size, else ``Flow.submit`` with the exact fee;
wait until the nodes have synced the entry, ask each node which segments it already holds and
send only the missing ones, in parallel, over the raw-bytes fast path; wait for finalization.
Running ``upload`` again after any interruption resumes: nothing a node acknowledged is re-sent.

Download (§5.4): take the file's size from its first ``Flow`` submission (the data root does
not fix the byte length: a node claiming fewer or more bytes could otherwise truncate or pad a
"verified" file), find the nodes that have the file finalized and describe it as the chain
does (a node that disagrees is skipped, logged and scored down), fetch segments in parallel,
check every segment's proof against the data root at its position before writing it, rotate to
the next node when one serves bad bytes, write into a temporary file beside OUT and rename it
into place only when every segment verified, so OUT is never half-written. Since each segment
is proven at its own index under the root and all segments are fetched, the file as a whole is
verified without a second pass. A client built without a chain can only require the nodes to
agree on the size (and checks the last segment first, so an absurd size fails at once).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from zgos.chain.client import Chain
from zgos.core.errors import ZgError
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcGuarded,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)
from zgos.runtime.outbound import OutboundClient, OutboundRefused
from zgos.storage.contracts import FlowContract
from zgos.storage.fasthash import segment_root
from zgos.storage.hasher import build_file_tree
from zgos.storage.scores import PeerScores
from zgos.storage.spec.filetree import FileTree
from zgos.storage.spec.flow import compute_segment_count
from zgos.storage.spec.merkle import BYTES_PER_SEGMENT, InvalidProof, Proof, parse_hash
from zgos.storage.spec.segment import InvalidSegment, SegmentWithProof, validate_segment
from zgos.storage.spec.shard import (
    InvalidShardConfig,
    ShardConfig,
    compute_flow_segment,
    compute_shard_segments,
    select_nodes,
)

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 4
HTTP_TIMEOUT_S = 60.0
POLL_S = 0.2
WAIT_TIMEOUT_S = 300.0
SEGMENT_RETRIES = 3
MAX_DOWNLOAD_THREADS = 64
STREAM_WINDOW_SEGMENTS = 32  # segments fetched ahead of the consumer (8 MiB)
# The largest answer a node may send: a file's held-segment list for a ~1 TB file (4M indexes);
# a segment is 256 KiB (~350 KB as JSON-RPC).
MAX_NODE_RESPONSE_BYTES = 32 * 1024 * 1024

Progress = Callable[[int], None]  # called with the number of bytes just done


class StorageError(ZgError):
    """An upload or download could not complete."""


class NodeUnavailable(StorageError):
    """A storage node did not answer."""


class NodeMisbehaved(NodeUnavailable):
    """The outbound guard cut a node's answer (deadline, size cap, redirects, refused address)."""


class CorruptData(StorageError):
    """A node served bytes that do not match the file's root."""


@dataclass(frozen=True)
class UploadResult:
    root: bytes
    tx_seq: int
    tx_hash: str | None  # None when the file was already on chain
    size: int
    segments_sent: int


@dataclass(frozen=True)
class VerifiedFile:
    """What a download trusts about a file: the root asked for and its byte size, from the
    chain (``size_from == "chain"``) or, without a chain, as every node reporting it agrees."""

    root: bytes
    size: int
    size_from: str


@dataclass(frozen=True)
class FileLocation:
    node: str
    info: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.info["tx"]["seq"])

    @property
    def size(self) -> int:
        return int(self.info["tx"]["size"])

    @property
    def root(self) -> bytes:
        return parse_hash(self.info["tx"]["dataMerkleRoot"])

    @property
    def start_entry(self) -> int:
        return int(self.info["tx"]["startEntryIndex"])


class NodeConnection:
    """One storage node: the raw-bytes fast path of zgos nodes, or 0G's JSON-RPC only
    (``fast=False``, or detected when the node has no ``/health`` endpoint, e.g. a 0G node)."""

    def __init__(self, url: str, http: httpx.Client, fast: bool | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http
        self._ids = iter(range(1, 1 << 62))
        self._fast = fast
        self._shard: ShardConfig | None = None

    @property
    def fast(self) -> bool:
        if self._fast is None:
            try:
                response = self.http.get(f"{self.url}/health")
                self._fast = response.status_code == 200 and "networkIdentity" in response.json()
            except (httpx.HTTPError, ValueError):
                self._fast = False
        return self._fast

    def rpc(self, method: str, *params: Any) -> Any:
        try:
            return call_jsonrpc(self.http, self.url, method, params, request_id=next(self._ids))
        except JsonRpcGuarded as exc:
            raise NodeMisbehaved(f"storage node {self.url} did not answer {method} ({exc})") from None
        except (JsonRpcUnreachable, JsonRpcNotJson) as exc:
            raise NodeUnavailable(f"storage node {self.url} did not answer {method} ({exc})",
                                  "is the node running? see `zg devnet status`") from None
        except JsonRpcErrorAnswer as exc:
            raise StorageError(f"{self.url}: {exc}") from None

    def shard(self) -> ShardConfig:
        """The shard the node serves (asked once)."""
        if self._shard is None:
            try:
                self._shard = ShardConfig.from_json(self.rpc("zgs_getShardConfig"))
            except InvalidShardConfig as exc:
                raise StorageError(f"{self.url} reports a bad shard config: {exc.message}") from None
        return self._shard

    def held_segments(self, seq: int) -> tuple[set[int], bool]:
        if not self.fast:  # 0G reports a contiguous prefix of uploaded segments
            info = self.rpc("zgs_getFileInfoByTxSeq", seq)
            if info is None:
                raise StorageError(f"{self.url} does not know tx {seq}")
            return set(range(int(info["uploadedSegNum"]))), bool(info["finalized"])
        answer = self._get_json(f"/zgos/v1/file/{seq}")
        return set(answer["segments"]), bool(answer["finalized"])

    def put_segment(self, seq: int, segment: SegmentWithProof) -> None:
        if not self.fast:
            try:
                self.rpc("zgs_uploadSegmentsByTxSeq", [segment.to_json()], seq)
            except NodeUnavailable:
                raise
            except StorageError as exc:
                if "already" not in exc.message:  # 0G: "already uploaded" duplicates are fine
                    raise StorageError(f"{self.url} rejected segment {segment.index}: {exc.message}") from None
            return
        headers = {
            "X-Zg-Root": "0x" + segment.root.hex(),
            "X-Zg-File-Size": str(segment.file_size),
            "X-Zg-Proof": json.dumps(segment.proof.to_json(), separators=(",", ":")),
            "Content-Type": "application/octet-stream",
        }
        try:
            response = self.http.put(f"{self.url}/zgos/v1/segment/{seq}/{segment.index}", content=segment.data, headers=headers)
        except httpx.HTTPError as exc:
            raise _unavailable(f"storage node {self.url} dropped segment {segment.index}", exc) from None
        if response.status_code != 200:
            message = _message(response)
            if "already uploaded and finalized" in message:  # e.g. the node synced it from a peer
                return
            raise StorageError(f"{self.url} rejected segment {segment.index}: {message}")

    def get_segment(self, seq: int, index: int) -> tuple[bytes, Proof]:
        if not self.fast:
            answer = self.rpc("zgs_downloadSegmentWithProofByTxSeq", seq, index)
            if answer is None:
                raise StorageError(f"{self.url} does not have segment {index} of tx {seq}")
            try:
                segment = SegmentWithProof.from_json(answer)
            except InvalidSegment as exc:
                raise CorruptData(f"{self.url} sent a malformed segment {index}: {exc.message}") from None
            return segment.data, segment.proof
        try:
            response = self.http.get(f"{self.url}/zgos/v1/segment/{seq}/{index}")
        except httpx.HTTPError as exc:
            raise _unavailable(f"storage node {self.url} did not send segment {index}", exc) from None
        if response.status_code != 200:
            raise StorageError(f"{self.url} could not send segment {index}: {_message(response)}")
        try:
            proof = Proof.from_json(json.loads(response.headers.get("X-Zg-Proof", "null")))
        except (InvalidProof, ValueError):
            raise CorruptData(f"{self.url} sent segment {index} with a malformed proof") from None
        return response.content, proof

    def _get_json(self, path: str) -> Any:
        try:
            response = self.http.get(self.url + path)
        except httpx.HTTPError as exc:
            raise _unavailable(f"storage node {self.url} did not answer", exc) from None
        if response.status_code != 200:
            raise StorageError(f"{self.url}: {_message(response)}")
        return response.json()


def _unavailable(what: str, exc: httpx.HTTPError) -> NodeUnavailable:
    """The error for a transfer that failed: the guard's reason when it cut it, else the type."""
    if isinstance(exc, OutboundRefused | httpx.TimeoutException | httpx.TooManyRedirects) and str(exc):
        return NodeMisbehaved(f"{what} ({exc})")
    return NodeUnavailable(f"{what} ({type(exc).__name__})")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return f"HTTP {response.status_code}"


class StorageClient:
    """Upload and download files; use as a context manager to close connections.

    Every call to a node is guarded (``zgos.runtime.outbound``): ``timeout_s`` is its total
    time, answers are capped at ``MAX_NODE_RESPONSE_BYTES``, and node URLs that came from the
    registry or an indexer must pass ``policy`` (URLs the user typed in need not: the default)."""

    def __init__(self, nodes: Sequence[str], chain: Chain | None = None, flow_address: str | None = None,
                 account: LocalAccount | None = None, workers: int = DEFAULT_WORKERS,
                 timeout_s: float = HTTP_TIMEOUT_S, fast_path: bool | None = None,
                 policy: AddressPolicy = OPEN_POLICY) -> None:
        if not nodes:
            raise StorageError("no storage nodes given", "pass --node URL or start the devnet")
        self.http = OutboundClient(policy, deadline_s=timeout_s, max_response_bytes=MAX_NODE_RESPONSE_BYTES,
                                   max_connections=4 * workers * len(nodes))
        self.nodes = [NodeConnection(url, self.http, fast_path) for url in nodes]
        self.chain = chain
        self.flow = FlowContract(chain, flow_address) if chain is not None and flow_address else None
        self.account = account
        self.workers = workers
        self.scores = PeerScores()  # nodes that described a file falsely or served bad bytes

    def __enter__(self) -> StorageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- lookups -------------------------------------------------------------------------

    def locate(self, root: bytes | None = None, seq: int | None = None, finalized: bool = True) -> list[FileLocation]:
        """Nodes that know the file (finalized ones only, by default)."""
        found = []
        for node in self.nodes:
            try:
                info = node.rpc("zgs_getFileInfo", "0x" + root.hex(), True) if root is not None else node.rpc("zgs_getFileInfoByTxSeq", seq)
            except StorageError:
                continue
            if info is not None and (info["finalized"] or not finalized):
                found.append(FileLocation(node.url, info))
        return found

    def info(self, root: bytes | None = None, seq: int | None = None) -> FileLocation:
        found = self.locate(root, seq, finalized=False)
        if not found:
            what = f"root 0x{root.hex()}" if root is not None else f"tx seq {seq}"
            raise StorageError(f"no node knows a file with {what}", "check the root, or wait for log sync")
        return sorted(found, key=lambda loc: not loc.info["finalized"])[0]

    # --- upload --------------------------------------------------------------------------

    def upload(self, path: Path, *, tags: bytes = b"", fee: int | None = None, replicas: int = 1,
               progress: Progress | None = None, wait_finalized: bool = True,
               tree: FileTree | None = None) -> UploadResult:
        """Upload ``path``; resumable (call again after any failure)."""
        if not path.is_file():
            raise StorageError(f"no such file: {path}")
        if path.stat().st_size == 0:
            raise StorageError(f"{path} is empty", "0G storage does not store empty files")
        tree = tree or build_file_tree(path)
        if replicas < 1:
            raise StorageError("replicas must be at least 1")
        failed: dict[str, str] = {}
        self._select(replicas, [], failed)  # fail before paying when the nodes cannot hold it
        known = self.known_submission(tree)
        tx_hash = None
        if known:
            seq, start_entry = known[0].seq, known[0].start_entry
        else:
            if self.flow is None or self.account is None:
                raise StorageError("the file is not on chain and no chain account was given")
            result = self.flow.submit(self.account, [tree.submission(tags)], fee)
            seq, start_entry, tx_hash = result.entries[0].seq, result.entries[0].start_entry, result.tx_hash
        sent = 0
        done: list[NodeConnection] = []  # nodes holding (and, if asked, finalized) their shard
        while todo := [n for n in self._select(replicas, done, failed) if n not in done]:
            def one(node: NodeConnection) -> int:
                self._wait(partial(_knows_tx, node, seq), f"{node.url} to sync tx {seq}")
                count = self._upload_to(node, path, tree, seq, start_entry, progress)
                if wait_finalized:
                    self._wait(partial(_has_finalized, node, seq), f"{node.url} to finalize tx {seq}")
                return count

            with ThreadPoolExecutor(len(todo)) as pool:
                futures = [(node, pool.submit(one, node)) for node in todo]
            for node, future in futures:
                error = future.exception()
                if isinstance(error, NodeUnavailable):  # partitioned or down: pick another node
                    failed[node.url] = error.message
                    log.warning("storage node %s dropped out of the upload: %s", node.url, error.message)
                elif error is not None:
                    raise error
                else:
                    done.append(node)
                    sent += future.result()
        return UploadResult(tree.root, seq, tx_hash, tree.size, sent)

    def known_submission(self, tree: FileTree) -> list[FileLocation]:
        """Nodes that already know the file of ``tree`` (same root and size), so it need not be
        submitted again. With a chain the submission must be on it: a node's word is not enough;
        a root first submitted with another length raises, since a download by root would
        return that length rather than this file."""
        if self.flow is not None:
            first = self.flow.file_of(tree.root)
            if first is None:
                return []
            if first.size != tree.size:
                raise StorageError(
                    f"a file with the same data root 0x{tree.root.hex()} but {first.size} bytes (not {tree.size}) "
                    f"was submitted first by {first.submitter}; a download by root returns {first.size} bytes",
                    "the two files differ only in trailing zero bytes; append a byte to store this one",
                )
        return [loc for loc in self.locate(tree.root, finalized=False) if describes_file(loc, tree.root, tree.size)]

    def _select(self, replicas: int, done: list[NodeConnection], failed: dict[str, str]) -> list[NodeConnection]:
        """Nodes covering every shard ``replicas`` times, preferring those in ``done``; nodes
        that do not answer are added to ``failed`` (and logged)."""
        usable: list[NodeConnection] = []
        for node in done + [n for n in self.nodes if n not in done and n.url not in failed]:
            try:
                node.shard()
                usable.append(node)
            except StorageError as exc:
                failed[node.url] = exc.message
                log.warning("skipping storage node %s: %s", node.url, exc.message)
        chosen = select_nodes([n.shard() for n in usable], replicas)
        if chosen is None:
            shards = ", ".join(f"{n.url} ({n.shard()})" for n in usable) or "none"
            skipped = "; ".join(f"{url}: {why}" for url, why in failed.items())
            raise StorageError(f"the usable storage nodes cannot hold {replicas} replica(s) of every shard "
                               f"(usable: {shards}{'; skipped: ' + skipped if skipped else ''})",
                               "start more nodes, pass more --node URLs, or lower --replicas")
        return [usable[i] for i in chosen]

    def _upload_to(self, node: NodeConnection, path: Path, tree: FileTree, seq: int, start_entry: int,
                   progress: Progress | None) -> int:
        mine = compute_shard_segments(start_entry, tree.num_segments, node.shard())
        held, finalized = node.held_segments(seq)
        if finalized:
            held = set(mine)
        todo = [i for i in mine if i not in held]
        if progress:
            progress(sum(min(BYTES_PER_SEGMENT, tree.size - i * BYTES_PER_SEGMENT) for i in mine if i in held))
        fd = os.open(path, os.O_RDONLY)
        try:
            def send(index: int) -> None:
                data = _read_segment(fd, tree.size, index)
                segment = SegmentWithProof(tree.root, data, index, tree.proof(index), tree.size)
                for attempt in range(SEGMENT_RETRIES):
                    try:
                        node.put_segment(seq, segment)
                        break
                    except NodeUnavailable:
                        if attempt == SEGMENT_RETRIES - 1:
                            raise
                        time.sleep(0.2 * (attempt + 1))
                if progress:
                    progress(min(BYTES_PER_SEGMENT, tree.size - index * BYTES_PER_SEGMENT))

            with ThreadPoolExecutor(self.workers) as pool:
                for _ in pool.map(send, todo):
                    pass
        finally:
            os.close(fd)
        return len(todo)

    def _wait(self, check: Callable[[], bool], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise StorageError(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    # --- download ------------------------------------------------------------------------

    def download(self, root: bytes, out: Path, progress: Progress | None = None) -> VerifiedFile:
        """Download the file with data root ``root`` to ``out``, verified; atomic."""
        plan = self._plan(root)
        size = plan.file.size
        with atomic_output(out, size) as handle:

            def fetch(index: int) -> None:
                data = self._fetch_verified(plan, index)
                os.pwrite(handle, data, index * BYTES_PER_SEGMENT)
                if progress:
                    progress(len(data))

            with ThreadPoolExecutor(plan.threads) as pool:
                results = [pool.submit(fetch, i) for i in range(compute_segment_count(size))]
                failure = next((exc for f in results if (exc := f.exception()) is not None), None)
            if failure is not None:
                raise _download_failed(root, failure)
        return plan.file

    def stream(self, root: bytes, window: int = STREAM_WINDOW_SEGMENTS) -> tuple[VerifiedFile, Generator[bytes, None, None]]:
        """The file with data root ``root`` as verified chunks in order (one per segment),
        fetched ``window`` segments ahead in parallel: nothing is yielded before its own proof
        checked out, so a consumer can pass bytes on at once. A failure mid-way raises from the
        iterator (the consumer has the verified prefix only)."""
        plan = self._plan(root)
        count = compute_segment_count(plan.file.size)

        def chunks() -> Generator[bytes, None, None]:
            with ThreadPoolExecutor(plan.threads) as pool:
                pending = deque(pool.submit(self._fetch_verified, plan, i) for i in range(min(window, count)))
                submitted = len(pending)
                try:
                    while pending:
                        future = pending.popleft()
                        if submitted < count:
                            pending.append(pool.submit(self._fetch_verified, plan, submitted))
                            submitted += 1
                        try:
                            yield future.result()
                        except StorageError as exc:
                            raise _download_failed(root, exc) from None
                finally:
                    for future in pending:
                        future.cancel()

        return plan.file, chunks()

    def size_of(self, root: bytes) -> int | None:
        """The byte size of the file ``root`` from its first Flow submission (None: no chain)."""
        if self.flow is None:
            return None
        first = self.flow.file_of(root)
        if first is None:
            raise StorageError(f"0x{root.hex()} was never submitted to the Flow contract",
                               "check the root (`zg storage info`), or wait for the upload's transaction")
        return first.size

    def verified_locations(self, root: bytes, finalized: bool = True) -> tuple[VerifiedFile, list[FileLocation]]:
        """The file ``root`` (size from the chain) and the nodes that describe it the same way.

        A node whose answer names another root or another size is skipped, logged and scored
        down: it lies about the file. Without a chain the reporting nodes must agree on the size
        (``StorageError`` if they do not); their common size is then the best available."""
        size = self.size_of(root)
        locations = self.locate(root, finalized=finalized)
        if size is None:
            sizes = {claimed for loc in locations if (claimed := _claimed_size(loc, root)) is not None}
            if len(sizes) > 1:
                raise StorageError(f"the storage nodes disagree on the size of 0x{root.hex()}: {sorted(sizes)} bytes",
                                   "download against the chain (a deployment), which records the true size")
            if not sizes:
                raise StorageError(f"no node holds a finalized file with root 0x{root.hex()}",
                                   "check the root with `zg storage info`, or wait for the upload to finish")
            file = VerifiedFile(root, sizes.pop(), "nodes")
        else:
            file = VerifiedFile(root, size, "chain")
        agreeing = []
        for loc in locations:
            if describes_file(loc, root, file.size):
                agreeing.append(loc)
            else:
                self.scores.corrupt(loc.node)
                log.warning("storage node %s describes 0x%s as %s bytes, not %d (from the %s): skipped and scored "
                            "down to %d", loc.node, root.hex(), _claimed_size(loc, root), file.size, file.size_from,
                            self.scores.score(loc.node))
        return file, agreeing

    def _plan(self, root: bytes) -> _DownloadPlan:
        """Where each segment of the finalized file ``root`` can be fetched."""
        file, locations = self.verified_locations(root)
        if not locations:
            raise StorageError(f"no node holds a finalized copy of 0x{root.hex()} ({file.size} bytes per the {file.size_from})",
                               "check the root with `zg storage info`, or wait for the upload to finish")
        seq_by_node = {loc.node: loc.seq for loc in locations}
        start_by_node = {loc.node: loc.start_entry for loc in locations}
        nodes = []
        for node in self.nodes:
            if node.url in seq_by_node:
                try:
                    node.shard()
                    nodes.append(node)
                except StorageError as exc:
                    log.warning("skipping storage node %s: %s", node.url, exc.message)
        if not nodes:
            raise StorageError(f"no node holding 0x{root.hex()} reports its shard", "check the nodes, or add nodes")
        # Shards hold flow segments by residue modulo a power of two, so which nodes hold file
        # segment i depends on i modulo the largest num_shard only (one list per residue).
        modulus = max(n.shard().num_shard for n in nodes)
        count = compute_segment_count(file.size)
        holders = [[n for n in nodes if n.shard().holds(compute_flow_segment(start_by_node[n.url], r))]
                   for r in range(modulus)]
        if missing := [i for i in range(min(count, modulus)) if not holders[i]]:
            uncovered = sum(len(range(i, count, modulus)) for i in missing)
            raise StorageError(f"no reachable node holds segment {missing[0]} of 0x{root.hex()} "
                               f"({uncovered} segment(s) uncovered)", "wait for the nodes to sync, or add nodes")
        plan = _DownloadPlan(
            file=file, seq_by_node=seq_by_node, holders=holders, modulus=modulus,
            threads=min(MAX_DOWNLOAD_THREADS, self.workers * len(nodes)),  # `workers` per node
        )
        if file.size_from == "nodes":  # an absurd claimed size fails here, before any allocation
            try:
                self._fetch_verified(plan, count - 1)
            except StorageError as exc:
                raise _download_failed(root, exc) from None
        return plan

    def _fetch_verified(self, plan: _DownloadPlan, index: int) -> bytes:
        """Segment ``index`` (file bytes only), proof-checked; the next holder is tried when one
        fails or serves corrupt bytes (and is scored down). Raises ``CorruptData`` if any holder
        served corrupt data."""
        root, size = plan.file.root, plan.file.size
        errors = []
        candidates = plan.holders[index % plan.modulus]
        turn = index // plan.modulus  # spreads each residue class over its holders
        rotated = [candidates[(turn + attempt) % len(candidates)] for attempt in range(len(candidates))]
        for node in sorted(rotated, key=lambda n: self.scores.banned(n.url)):  # banned nodes last
            try:
                data, proof = node.get_segment(plan.seq_by_node[node.url], index)
                validate_segment(SegmentWithProof(root, data, index, proof, size), root, size, segment_root)
            except InvalidSegment as exc:
                self.scores.corrupt(node.url)
                errors.append(f"{node.url} served corrupt segment {index} ({exc.message})")
                continue
            except StorageError as exc:
                errors.append(exc.message)
                continue
            return data[: size - index * BYTES_PER_SEGMENT]
        kind = CorruptData if any("corrupt" in e for e in errors) else StorageError
        raise kind("; ".join(errors))


@dataclass(frozen=True)
class _DownloadPlan:
    file: VerifiedFile
    seq_by_node: dict[str, int]
    holders: list[list[NodeConnection]]  # per segment index modulo `modulus`, the nodes of its shard
    modulus: int
    threads: int


def _claimed_size(location: FileLocation, root: bytes | None) -> int | None:
    """The size a node's answer claims (None if malformed, or if it names a root other than ``root``)."""
    try:
        if (root is not None and location.root != root) or location.seq < 0 or location.start_entry < 0:
            return None
        return location.size
    except (KeyError, TypeError, ValueError, InvalidProof):
        return None


def describes_file(location: FileLocation, root: bytes, size: int) -> bool:
    """Whether a node's answer describes the file ``root`` of ``size`` bytes."""
    return _claimed_size(location, root) == size


def _download_failed(root: bytes, cause: BaseException) -> StorageError:
    kind = CorruptData if isinstance(cause, CorruptData) else StorageError
    message = cause.message if isinstance(cause, StorageError) else f"{type(cause).__name__}: {cause}"
    return kind(f"download of 0x{root.hex()} failed: {message}", "OUT was not written; another node may have a good copy")


@contextmanager
def atomic_output(out: Path, size: int) -> Generator[int, None, None]:
    """A descriptor of a ``size``-byte temporary file beside ``out``, fsynced and renamed to
    ``out`` only when the block completes, removed otherwise: ``out`` is never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        os.ftruncate(handle, size)
        yield handle
        os.fsync(handle)
        os.close(handle)
        handle = -1
        os.replace(tmp_name, out)
    finally:
        if handle >= 0:
            os.close(handle)
        Path(tmp_name).unlink(missing_ok=True)


def _knows_tx(node: NodeConnection, seq: int) -> bool:
    return node.rpc("zgs_getFileInfoByTxSeq", seq) is not None


def _has_finalized(node: NodeConnection, seq: int) -> bool:
    return node.rpc("zgs_checkFileFinalized", seq) is True


def _read_segment(fd: int, size: int, index: int) -> bytes:
    """Segment bytes as sent on the wire: the last one zero-padded to whole sectors."""
    data = os.pread(fd, BYTES_PER_SEGMENT, index * BYTES_PER_SEGMENT)
    remainder = len(data) % 256
    return data + bytes(256 - remainder) if remainder else data
