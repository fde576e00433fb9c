"""The DA clients: of a signer (``SignerClient``) and of a disperser (``DisperserClient``), each
call with a deadline and the message limits of ``zgos.da.rpc``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import grpc

from zgos.core.errors import ZgError
from zgos.da.proto import disperser_pb2, disperser_pb2_grpc, signer_pb2, signer_pb2_grpc
from zgos.da.rpc import (
    DEFAULT_TIMEOUT_S,
    FINAL_STATUSES,
    GRPC_OPTIONS,
    STATUS_POLL_S,
    TOKEN_METADATA_KEY,
    RpcError,
    cell_from_pb,
    cell_to_pb,
)
from zgos.da.spec.encoding import Cell
from zgos.runtime.logs import log_connection


class _Client:
    """A gRPC channel to one service; calls raise ``RpcError`` naming the target."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
        log_connection(target, target)  # gRPC resolves and connects on its own

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
