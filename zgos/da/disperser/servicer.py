"""The disperser's gRPC API: 0G's ``disperser.Disperser`` (``DisperseBlob``, ``GetBlobStatus``,
``RetrieveBlob``) over a ``Disperser``.

Who may spend: the disperser pays every blob's fee from its own account, so ``DisperseBlob``
needs the disperser's install token (``token`` in its service directory, mode 0600, created at
first start; sent as ``authorization: Bearer TOKEN`` metadata; ``zg da put`` reads it from the
data dir). Anyone who can read that file could spend the disperser's money; anyone else gets
``UNAUTHENTICATED``. Status and retrieval spend nothing and stay open. (A public disperser
would charge the client instead; zgos's disperser serves its operator.)

Bad input gets ``INVALID_ARGUMENT`` (``zgos.runtime.grpcguard`` also turns unparsable requests
into it), a chain outage ``UNAVAILABLE``; nothing a caller sends is logged with a traceback.
"""

from __future__ import annotations

import hmac

import grpc

from zgos.core.errors import ZgError
from zgos.da.disperser.disperser import Disperser
from zgos.da.disperser.state import CONFIRMED, FAILED, FINALIZED, PROCESSING, Dispersal
from zgos.da.proto import disperser_pb2, disperser_pb2_grpc
from zgos.da.rpc import DISPERSER_LIMITS, serve
from zgos.da.spec.blob import BlobError
from zgos.runtime.access import TOKEN_FILE, presented_token

BLOB_ID_BYTES = 32
MAX_REQUEST_ID_BYTES = 128  # "<sha256 hex>-<ns>": ~84 bytes

STATUS_CODES = {
    PROCESSING: disperser_pb2.PROCESSING,
    CONFIRMED: disperser_pb2.CONFIRMED,
    FAILED: disperser_pb2.FAILED,
    FINALIZED: disperser_pb2.FINALIZED,
}


def token_matches(context: grpc.ServicerContext, token: str) -> bool:
    """True if the call carries ``token`` (``authorization: Bearer T`` or ``x-zg-token: T``)."""
    metadata = {str(k).lower(): str(v) for k, v in context.invocation_metadata() or () if isinstance(v, str)}
    presented = presented_token(metadata)
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


def status_reply(dispersal: Dispersal) -> disperser_pb2.BlobStatusReply:
    info = None
    if dispersal.blob_id and dispersal.status in (CONFIRMED, FINALIZED):
        info = disperser_pb2.BlobInfo(blob_header=disperser_pb2.BlobHeader(
            storage_root=bytes.fromhex(dispersal.blob_id), epoch=dispersal.epoch, quorum_id=dispersal.quorum_id
        ))
    return disperser_pb2.BlobStatusReply(
        status=STATUS_CODES[dispersal.status], info=info, reason=dispersal.reason,
        certificate_tx=dispersal.certificate_tx,
    )


class DisperserServicer(disperser_pb2_grpc.DisperserServicer):
    def __init__(self, disperser: Disperser) -> None:
        self.disperser = disperser

    def DisperseBlob(self, request: disperser_pb2.DisperseBlobRequest, context: grpc.ServicerContext) -> disperser_pb2.DisperseBlobReply:
        if not token_matches(context, self.disperser.token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "dispersal spends the disperser's fees: send its install token as 'authorization: "
                          f"Bearer TOKEN' (the file {TOKEN_FILE} in the disperser's data dir; `zg da put` reads it)")
        try:
            request_id = self.disperser.submit(bytes(request.data))
        except BlobError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return disperser_pb2.DisperseBlobReply(result=disperser_pb2.PROCESSING, request_id=request_id.encode())

    def GetBlobStatus(self, request: disperser_pb2.BlobStatusRequest, context: grpc.ServicerContext) -> disperser_pb2.BlobStatusReply:
        raw = bytes(request.request_id)
        request_id = raw.decode("ascii") if raw.isascii() and len(raw) <= MAX_REQUEST_ID_BYTES else ""
        try:
            dispersal = self.disperser.status(request_id) if request_id else None
        except ZgError as exc:  # the chain is down (the finality check reads it)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if dispersal is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown request id")
        return status_reply(dispersal)

    def RetrieveBlob(self, request: disperser_pb2.RetrieveBlobRequest, context: grpc.ServicerContext) -> disperser_pb2.RetrieveBlobReply:
        blob_id = bytes(request.storage_root)
        if len(blob_id) != BLOB_ID_BYTES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"storage_root must be {BLOB_ID_BYTES} bytes")
        data = self.disperser.retrieve(blob_id)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no certified blob 0x{blob_id.hex()} at this disperser")
        return disperser_pb2.RetrieveBlobReply(data=data)


def serve_disperser(disperser: Disperser, host: str, port: int) -> grpc.Server:
    """Start the disperser's gRPC server (returns at once)."""
    return serve(disperser_pb2_grpc.add_DisperserServicer_to_server, DisperserServicer(disperser), host, port,
                 DISPERSER_LIMITS)
