"""One storage node as a client sees it: its JSON-RPC methods (0G's names) and the raw-bytes
fast path of zgos nodes, each behind a typed method, with the errors every transfer raises.

``NodeConnection`` is the only place a client names a node method: ``status`` is
``zgs_getStatus``, ``shard`` is ``zgs_getShardConfig``, ``knows_tx``/``has_finalized`` are
``zgs_getFileInfoByTxSeq``/``zgs_checkFileFinalized``, ``custody`` is ``zgs_getCustody``, segments go up and down over
``/zgos/v1/segment``, runs of them come down as frames over ``/zgos/v1/segments`` (or ``zgs_uploadSegmentsByTxSeq``/``zgs_downloadSegmentWithProofByTxSeq``
on a node without the fast path, e.g. a 0G node). A segment refused because the node already
holds it (the file finalized meanwhile, e.g. synced from a peer) is not an error: the node says
so with ``ALREADY_FINALIZED_ERROR_CODE``, or, asked afterwards, by the file's state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import httpx

from zgos.core.errors import ZgError
from zgos.runtime.netutil import (
    JsonRpcErrorAnswer,
    JsonRpcGuarded,
    JsonRpcNotJson,
    JsonRpcUnreachable,
    call_jsonrpc,
)
from zgos.runtime.outbound import OutboundClient, OutboundRefused
from zgos.storage.framefetch import Frame, FrameChannel, FramesRefused, ProvenWrite
from zgos.storage.locations import (
    FileLocation,
    Holding,
    is_finalized,
    parse_holdings,
    parse_segment_indexes,
)
from zgos.storage.spec.custody import Custody, InvalidCustody, decode_custody
from zgos.storage.spec.frames import (
    InvalidFrame,
    encode_frame_header,
    encode_proof,
)
from zgos.storage.spec.merkle import InvalidProof, Proof
from zgos.storage.spec.segment import ALREADY_FINALIZED_ERROR_CODE, InvalidSegment, SegmentWithProof
from zgos.storage.spec.shard import InvalidShardConfig, ShardConfig

log = logging.getLogger(__name__)

POLL_S = 0.2  # the longest pause between two polls
FIRST_POLL_S = 0.01  # the first pause; each next one is twice as long, up to POLL_S
WAIT_TIMEOUT_S = 300.0
MAX_PARALLEL_QUERIES = 16  # nodes asked at once when every node is asked the same question


class StorageError(ZgError):
    """An upload or download could not complete."""


class NodeUnavailable(StorageError):
    """A storage node did not answer."""


class NodeMisbehaved(NodeUnavailable):
    """The outbound guard cut a node's answer (deadline, size cap, redirects, refused address)."""


class CorruptData(StorageError):
    """A node served bytes that do not match the file's root."""


class NodeRefused(StorageError):
    """A node answered a call with an error; ``code`` is its JSON-RPC code (None: not JSON-RPC)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
    """Poll ``check`` until it holds, soon at first (a node usually syncs a transaction within
    its log poll), then less often; ``StorageError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = FIRST_POLL_S
    while not check():
        if time.monotonic() > deadline:
            raise StorageError(f"timed out waiting for {what}")
        time.sleep(pause)
        pause = min(2 * pause, POLL_S)


def request_status(http: httpx.Client, url: str, request_id: int = 1) -> Any:
    """The ``zgs_getStatus`` answer of the node at ``url`` (raises ``zgos.runtime.netutil``'s
    ``JsonRpc*`` errors: callers that report their own reasons, like discovery, use it as is)."""
    return call_jsonrpc(http, url, "zgs_getStatus", request_id=request_id)


def request_shard_config(http: httpx.Client, url: str, request_id: int = 1) -> ShardConfig:
    """The shard the node at ``url`` serves (``zgs_getShardConfig``); raises the ``JsonRpc*``
    errors, or ``InvalidShardConfig`` for a malformed answer."""
    return ShardConfig.from_json(call_jsonrpc(http, url, "zgs_getShardConfig", request_id=request_id))


class NodeConnection:
    """One storage node: the raw-bytes fast path of zgos nodes, or 0G's JSON-RPC only
    (``fast=False``, or detected when the node has no ``/health`` endpoint, e.g. a 0G node)."""

    def __init__(self, url: str, http: OutboundClient, fast: bool | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = http
        self.frame_channel = FrameChannel(self.url, http.policy, http.deadline_s)
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
        return self._guarded(method, lambda request_id: call_jsonrpc(self.http, self.url, method, params,
                                                                     request_id=request_id))

    def _guarded(self, method: str, call: Callable[[int], Any]) -> Any:
        """``call(request_id)`` with the netutil errors turned into this module's."""
        try:
            return call(next(self._ids))
        except JsonRpcGuarded as exc:
            raise NodeMisbehaved(f"storage node {self.url} did not answer {method} ({exc})") from None
        except (JsonRpcUnreachable, JsonRpcNotJson) as exc:
            raise NodeUnavailable(f"storage node {self.url} did not answer {method} ({exc})",
                                  "is the node running? see `zg devnet status`") from None
        except JsonRpcErrorAnswer as exc:
            raise NodeRefused(f"{self.url}: {exc}", exc.code) from None

    # --- lookups -------------------------------------------------------------------------

    def status(self) -> Any:
        """The node's ``zgs_getStatus`` answer (log sync height, peers, network identity)."""
        return self._guarded("zgs_getStatus", lambda request_id: request_status(self.http, self.url, request_id))

    def shard(self) -> ShardConfig:
        """The shard the node serves (asked once)."""
        if self._shard is None:
            try:
                self._shard = self._guarded("zgs_getShardConfig",
                                            lambda request_id: request_shard_config(self.http, self.url, request_id))
            except InvalidShardConfig as exc:
                raise StorageError(f"{self.url} reports a bad shard config: {exc.message}") from None
        return self._shard

    def file_info(self, root: bytes | None = None, seq: int | None = None) -> dict[str, Any] | None:
        """What the node knows about the file with data root ``root`` (or tx ``seq``), or None."""
        if root is not None:
            return self.rpc("zgs_getFileInfo", "0x" + root.hex(), True)  # type: ignore[no-any-return]
        return self.rpc("zgs_getFileInfoByTxSeq", seq)  # type: ignore[no-any-return]

    def custody(self, seq: int, registry: str) -> tuple[Custody, bytes]:
        """``zgs_getCustody``: the node's signed statement that it holds its shard of file ``seq``."""
        try:
            return decode_custody(self.rpc("zgs_getCustody", seq, registry))
        except InvalidCustody as exc:
            raise NodeRefused(f"{self.url}: malformed custody: {exc}") from None

    def knows_tx(self, seq: int) -> bool:
        return self.file_info(seq=seq) is not None

    def has_finalized(self, seq: int) -> bool:
        return self.rpc("zgs_checkFileFinalized", seq) is True

    def wait_synced(self, seq: int) -> None:
        """Wait until the node's log sync has reached tx ``seq``."""
        wait_for(lambda: self.knows_tx(seq), f"{self.url} to sync tx {seq}")

    def wait_finalized(self, seq: int) -> None:
        wait_for(lambda: self.has_finalized(seq), f"{self.url} to finalize tx {seq}")

    def held_segments(self, seq: int) -> tuple[set[int], bool]:
        """The segments of tx ``seq`` the node holds, and whether the file is finalized."""
        if not self.fast:  # 0G reports a contiguous prefix of uploaded segments
            info = self.file_info(seq=seq)
            if info is None:
                raise StorageError(f"{self.url} does not know tx {seq}")
            return set(range(int(info["uploadedSegNum"]))), bool(info["finalized"])
        answer = self._get_json(f"/zgos/v1/file/{seq}")
        try:
            return set(parse_segment_indexes(answer["segments"])), bool(answer["finalized"])
        except (KeyError, TypeError, ValueError):
            raise NodeMisbehaved(f"{self.url} sent a malformed list of held segments") from None

    def holdings(self, roots: Sequence[bytes]) -> tuple[ShardConfig, list[Holding | None]]:
        """The node's shard and, per data root, where it has that file and which of its
        segments it holds (None: it does not know the file): one request to a zgos node, the
        JSON-RPC calls to any other."""
        if roots and self._fast is not False:
            query = "&".join(f"root=0x{root.hex()}" for root in roots)
            try:
                self._shard, files = parse_holdings(self.url, self._get_json(f"/zgos/v1/holdings?{query}"), len(roots))
                return self._shard, files
            except NodeUnavailable:
                raise
            except (StorageError, ValueError) as exc:  # not a holdings answer: a 0G node, an older zgos node
                log.info("%s answered no holdings (%s): asking over JSON-RPC", self.url, exc)
        return self.shard(), [self._holding(root) for root in roots]

    def _holding(self, root: bytes) -> Holding | None:
        info = self.file_info(root)
        if info is None:
            return None
        try:
            location = FileLocation(self.url, info)
            return Holding(location, frozenset(self.held_segments(location.seq)[0]))
        except (KeyError, TypeError, ValueError):
            raise NodeMisbehaved(f"{self.url} sent a malformed file info") from None

    # --- segments ------------------------------------------------------------------------

    def put_segment(self, seq: int, segment: SegmentWithProof) -> None:
        """Store ``segment`` of tx ``seq`` on the node; a node that holds it already is fine."""
        if not self.fast:
            try:
                self.rpc("zgs_uploadSegmentsByTxSeq", [segment.to_json()], seq)
            except NodeRefused as exc:
                self._accept_refusal(seq, segment.index, exc.message, exc.code)
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
            self._accept_refusal(seq, segment.index, _message(response), None)

    def put_segments(self, seq: int, segments: list[SegmentWithProof]) -> None:
        """Store ``segments`` (of one file) on the node in one request of frames; ``StorageError``
        if it refuses one (those before it are stored) or has no such endpoint (not zgos)."""
        first = segments[0]
        headers = {"X-Zg-Root": "0x" + first.root.hex(), "X-Zg-File-Size": str(first.file_size),
                   "Content-Type": "application/octet-stream"}
        # One body with its length (a few MiB), not a chunked stream: proxies on the way need not
        # understand chunked request bodies.
        body = b"".join(part for segment in segments for part in (
            encode_frame_header(segment.index, encode_proof(segment.proof), len(segment.data)), segment.data))
        try:
            response = self.http.put(f"{self.url}/zgos/v1/segments/{seq}", content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _unavailable(f"storage node {self.url} dropped segments {first.index}..", exc) from None
        if response.status_code != 200:
            raise StorageError(f"{self.url} refused segments {first.index}..: {_message(response)}")

    def _accept_refusal(self, seq: int, index: int, message: str, code: int | None) -> None:
        """Return if the refused segment ``index`` is on the node anyway: the node says the file
        is finalized (its typed code), or its file state shows the segment or finalization
        (e.g. synced from a peer meanwhile, or a retried duplicate); raise the refusal otherwise."""
        if code == ALREADY_FINALIZED_ERROR_CODE:
            return
        held, finalized = self.held_segments(seq)
        if finalized or index in held:
            return
        raise StorageError(f"{self.url} rejected segment {index}: {message}")

    def get_segment(self, seq: int, index: int) -> tuple[bytes, Proof]:
        """Segment ``index`` of tx ``seq`` and its proof, as the node sends them (unchecked)."""
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

    def get_segments(self, seq: int, indexes: range, into: ProvenWrite | None = None) -> Generator[Frame, None, None]:
        """Segments ``indexes`` of tx ``seq`` with their proofs, as the node sends them
        (unchecked; ``None`` for one it does not hold), read off the socket while the caller
        checks the last one, or proven and written to ``into`` natively
        (``zgos.storage.framefetch``). Only zgos nodes have this; ``StorageError`` from any other
        (``OutputFailed``, not the node's fault, passes through)."""
        what = f"storage node {self.url} did not send segments {indexes.start}.."
        try:
            yield from self.frame_channel.frames(seq, indexes, into)
        except FramesRefused as exc:
            raise StorageError(f"{self.url} could not send segments {indexes.start}..: {exc.message}") from None
        except InvalidFrame as exc:
            raise CorruptData(f"{self.url} sent a malformed frame: {exc.message}") from None
        except httpx.HTTPError as exc:  # refused by the outbound guards
            raise _unavailable(what, exc) from None
        except TimeoutError:
            raise NodeMisbehaved(f"{what} within its {self.http.deadline_s:g} s deadline") from None
        except (OSError, httpcore.NetworkError, httpcore.TimeoutException) as exc:
            raise NodeUnavailable(f"{what} ({type(exc).__name__})") from None

    def close(self) -> None:
        """Close the connections kept for frames."""
        self.frame_channel.close()

    def _get_json(self, path: str) -> Any:
        try:
            response = self.http.get(self.url + path)
        except httpx.HTTPError as exc:
            raise _unavailable(f"storage node {self.url} did not answer", exc) from None
        if response.status_code != 200:
            raise StorageError(f"{self.url}: {_message(response)}")
        try:
            return response.json()
        except ValueError:
            raise StorageError(f"{self.url} answered {path.split('?')[0]} with something other than JSON") from None


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


def locate(nodes: list[NodeConnection], root: bytes | None = None, seq: int | None = None,
           finalized: bool = True) -> list[FileLocation]:
    """The nodes that know the file ``root`` (or tx ``seq``): finalized ones only, by default.
    All are asked at once, so finding a file costs one round trip, not one per node."""
    def ask(node: NodeConnection) -> dict[str, Any] | None:
        try:
            return node.file_info(root, seq)
        except StorageError:
            return None

    with ThreadPoolExecutor(max(1, min(MAX_PARALLEL_QUERIES, len(nodes)))) as pool:
        infos = list(pool.map(ask, nodes))
    return [FileLocation(node.url, info) for node, info in zip(nodes, infos, strict=True)
            if isinstance(info, dict) and (is_finalized(info) or not finalized)]
