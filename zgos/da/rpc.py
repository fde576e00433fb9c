"""gRPC plumbing shared by the DA services and clients: message limits, cell conversion,
and the client of a signer (``SignerClient``) and of a disperser (``DisperserClient``).

Both servers run behind ``zgos.runtime.grpcguard`` with the limits below: a signer receives at
most one whole extended blob's cells (every column of every row), the disperser one blob."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc

from zgos.core.errors import ZgError
from zgos.da.proto import disperser_pb2, disperser_pb2_grpc, signer_pb2, signer_pb2_grpc
from zgos.da.spec.blob import (
    BYTES_PER_CELL,
    BYTES_PER_PROOF,
    CELLS_PER_ROW,
    MAX_BLOB_BYTES,
    MAX_ROWS,
)
from zgos.da.spec.encoding import Cell
from zgos.runtime.grpcguard import GrpcLimits, guarded_server
from zgos.runtime.signals import wait_for_signal

CELL_FRAMING_BYTES = 16  # protobuf tags and lengths around one cell
MESSAGE_HEADROOM_BYTES = 2**20  # ids, epochs, signatures, reasons
MAX_CELLS_MESSAGE_BYTES = MAX_ROWS * CELLS_PER_ROW * (BYTES_PER_CELL + BYTES_PER_PROOF + CELL_FRAMING_BYTES) \
    + MESSAGE_HEADROOM_BYTES  # every cell of a whole extended blob (~69 MB)
MAX_BLOB_MESSAGE_BYTES = MAX_BLOB_BYTES + MESSAGE_HEADROOM_BYTES
SIGNER_LIMITS = GrpcLimits(max_receive_bytes=MAX_CELLS_MESSAGE_BYTES, max_send_bytes=MAX_CELLS_MESSAGE_BYTES,
                           workers=8, max_concurrent_calls=8)
DISPERSER_LIMITS = GrpcLimits(max_receive_bytes=MAX_BLOB_MESSAGE_BYTES, max_send_bytes=MAX_BLOB_MESSAGE_BYTES,
                              workers=8, max_concurrent_calls=16)
MAX_MESSAGE_BYTES = max(MAX_CELLS_MESSAGE_BYTES, MAX_BLOB_MESSAGE_BYTES)  # what a client accepts
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
DEFAULT_TIMEOUT_S = 30.0
STATUS_POLL_S = 0.2  # how often a client waiting for a dispersal asks its status
FINAL_STATUSES = frozenset({disperser_pb2.CONFIRMED, disperser_pb2.FINALIZED, disperser_pb2.FAILED})
STOP_GRACE_S = 1.0  # calls in flight get this long once a service is signalled
TOKEN_METADATA_KEY = "authorization"  # "Bearer TOKEN", as HTTP services take it


class RpcError(ZgError):
    """A DA service answered with an error or could not be reached."""

    def __init__(self, target: str, error: grpc.RpcError) -> None:
        code = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        name = code.name if code is not None else "ERROR"
        super().__init__(f"{target}: {name}: {details}")
        self.target = target
        self.code = code
        self.details = details
        self.reason = f"{name}: {details}"  # the answer without the target, for per-signer reports


def cell_to_pb(cell: Cell) -> signer_pb2.Cell:
    return signer_pb2.Cell(row=cell.row, column=cell.column, data=cell.data, proof=cell.proof)


def cell_from_pb(cell: signer_pb2.Cell) -> Cell:
    return Cell(cell.row, cell.column, bytes(cell.data), bytes(cell.proof))


class _Client:
    """A gRPC channel to one service; calls raise ``RpcError`` naming the target."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., R], request: object, metadata: Sequence[tuple[str, str]] = ()) -> R:
        try:
            return method(request, timeout=self.timeout_s, metadata=tuple(metadata) or None)
        except grpc.RpcError as exc:
            raise RpcError(self.target, exc) from None


C = TypeVar("C", bound=_Client)
R = TypeVar("R")


class SignerClient(_Client):
    """A connection to one signer (``host:port``)."""

    def __init__(self, target: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(target, timeout_s)
        self._stub = signer_pb2_grpc.SignerStub(self._channel)

    def store_cells(self, blob_id: bytes, epoch: int, quorum_id: int, cells: Iterable[Cell]) -> tuple[bytes, str]:
        """Hand cells to the signer; returns (its BLS signature, its address)."""
        request = signer_pb2.StoreCellsRequest(
            blob_id=blob_id, epoch=epoch, quorum_id=quorum_id, cells=[cell_to_pb(c) for c in cells]
        )
        reply = self._call(self._stub.StoreCells, request)
        return bytes(reply.signature), reply.signer

    def get_cells(self, blob_id: bytes, indices: Sequence[tuple[int, int]] | None = None) -> list[Cell]:
        """The listed (row, column) cells, or every cell the signer holds when ``indices`` is None."""
        request = signer_pb2.GetCellsRequest(
            blob_id=blob_id,
            all=indices is None,
            indices=[signer_pb2.CellIndex(row=r, column=c) for r, c in indices or ()],
        )
        return [cell_from_pb(c) for c in self._call(self._stub.GetCells, request).cells]

    def status(self) -> signer_pb2.StatusReply:
        return self._call(self._stub.GetStatus, signer_pb2.StatusRequest())


class DisperserClient(_Client):
    """A connection to a disperser (0G's ``disperser.Disperser`` API). ``token`` is the
    disperser's install token: dispersal spends the disperser's fees, so it needs one."""

    def __init__(self, target: str, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> None:
        super().__init__(target, timeout_s)
        self._stub = disperser_pb2_grpc.DisperserStub(self._channel)
        self._token = token

    def disperse(self, data: bytes) -> bytes:
        metadata = [(TOKEN_METADATA_KEY, f"Bearer {self._token}")] if self._token else []
        reply = self._call(self._stub.DisperseBlob, disperser_pb2.DisperseBlobRequest(data=data), metadata)
        return bytes(reply.request_id)

    def status(self, request_id: bytes) -> disperser_pb2.BlobStatusReply:
        return self._call(self._stub.GetBlobStatus, disperser_pb2.BlobStatusRequest(request_id=request_id))

    def wait(self, request_id: bytes, timeout_s: float,
             on_status: Callable[[disperser_pb2.BlobStatusReply], None] = lambda reply: None,
             ) -> disperser_pb2.BlobStatusReply:
        """Ask the request's status (calling ``on_status`` with each answer) until it is final:
        CONFIRMED, FINALIZED or FAILED; raises ``ZgError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.status(request_id)
            on_status(reply)
            if reply.status in FINAL_STATUSES:
                return reply
            if time.monotonic() > deadline:
                raise ZgError(f"not certified after {timeout_s:g} s", f"check later: zg da status {request_id.decode()}")
            time.sleep(STATUS_POLL_S)

    def retrieve(self, blob_id: bytes, epoch: int, quorum_id: int = 0) -> bytes:
        request = disperser_pb2.RetrieveBlobRequest(storage_root=blob_id, epoch=epoch, quorum_id=quorum_id)
        return bytes(self._call(self._stub.RetrieveBlob, request).data)


def serve(register: Callable[[Any, grpc.Server], None], servicer: Any, host: str, port: int,
          limits: GrpcLimits) -> grpc.Server:
    """Start a guarded gRPC server for ``servicer`` on host:port (returns at once)."""
    return guarded_server(register, servicer, host, port, limits)


def serve_until_signalled(server: grpc.Server) -> None:
    """Block until SIGINT or SIGTERM, then stop ``server`` (calls in flight get
    ``STOP_GRACE_S``); the caller's cleanup runs after it returns."""
    wait_for_signal()
    server.stop(STOP_GRACE_S).wait()
