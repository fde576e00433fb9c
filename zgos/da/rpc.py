"""gRPC plumbing shared by the DA services and their clients (``zgos.da.client``): message
limits, cell conversion, typed errors, serving.

Both servers run behind ``zgos.runtime.grpcguard`` with the limits below: a signer receives at
most one whole extended blob's cells (every column of every row), the disperser one blob."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from zgos.core.errors import ZgError
from zgos.da.proto import disperser_pb2, signer_pb2
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


def serve(register: Callable[[Any, grpc.Server], None], servicer: Any, host: str, port: int,
          limits: GrpcLimits) -> grpc.Server:
    """Start a guarded gRPC server for ``servicer`` on host:port (returns at once)."""
    return guarded_server(register, servicer, host, port, limits)


def serve_until_signalled(server: grpc.Server) -> None:
    """Block until SIGINT or SIGTERM, then stop ``server`` (calls in flight get
    ``STOP_GRACE_S``); the caller's cleanup runs after it returns."""
    wait_for_signal()
    server.stop(STOP_GRACE_S).wait()
