"""The disperser: 0G's ``disperser.Disperser`` gRPC API over zgos's DA network.

A request moves PROCESSING -> CONFIRMED -> FINALIZED, or PROCESSING -> FAILED with a reason.
Processing (``Disperser._process``): encode (process pool) -> ``DAEntrance.submitBlob`` with
the fee -> read the epoch's quorum -> send every signer its columns in parallel -> verify each
returned BLS signature against the signer's registered key (bad ones are excluded and named)
-> if the valid signers hold >= 2/3 of the stake, aggregate and submit the certificate;
otherwise retry the missing signers, then cancel the blob on-chain so the fee is refunded and
report FAILED with every signer's failure. CONFIRMED becomes FINALIZED once the certificate is
``FINALITY_BLOCKS`` deep.

Durability: a request's payload and state are written (fsynced) to the service directory
before ``DisperseBlob`` answers; after a restart unfinished requests are processed again
(an already-submitted blob is reused, not paid twice).

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

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from concurrent import futures
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from eth_account.signers.local import LocalAccount

from zgos.core.errors import TxReverted, ZgError
from zgos.da.contracts import BlobStatus, DAContracts, Quorum, UnknownBlob
from zgos.da.proto import disperser_pb2, disperser_pb2_grpc
from zgos.da.rpc import DISPERSER_LIMITS, SignerClient, serve
from zgos.da.spec import bls
from zgos.da.spec.blob import BlobError, BlobHeader, validate_blob_size
from zgos.da.spec.encoding import EncodedBlob, Encoder
from zgos.runtime.access import TOKEN_FILE, load_or_create_token, presented_token

log = logging.getLogger(__name__)

FINALITY_BLOCKS = 3
SIGN_ATTEMPTS = 2
SIGN_RETRY_DELAY_S = 0.5
SIGN_TIMEOUT_S = 30.0
QUORUM_WAIT_S = 120.0
THRESHOLD_NUMERATOR = 2
THRESHOLD_DENOMINATOR = 3
BLOB_ID_BYTES = 32
MAX_REQUEST_ID_BYTES = 128  # "<sha256 hex>-<ns>": ~84 bytes

PROCESSING = "PROCESSING"
CONFIRMED = "CONFIRMED"
FAILED = "FAILED"
FINALIZED = "FINALIZED"


@dataclass
class Dispersal:
    """The durable state of one DisperseBlob request."""

    request_id: str
    size: int
    status: str = PROCESSING
    reason: str = "queued"
    blob_id: str = ""
    epoch: int = 0
    quorum_id: int = 0
    certificate_tx: str = ""
    certificate_block: int = 0
    signers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SignerOutcome:
    address: str
    url: str
    signature: bytes | None
    error: str


class Disperser:
    def __init__(self, da: DAContracts, account: LocalAccount, encoder: Encoder, state_dir: Path) -> None:
        self.da = da
        self.account = account
        self.encoder = encoder
        self.state_dir = state_dir
        (state_dir / "requests").mkdir(parents=True, exist_ok=True)
        (state_dir / "blobs").mkdir(parents=True, exist_ok=True)
        self.token_path = state_dir / TOKEN_FILE
        self.token = load_or_create_token(self.token_path)
        self._lock = threading.Lock()
        self._requests: dict[str, Dispersal] = {}
        self._workers = futures.ThreadPoolExecutor(4, thread_name_prefix="disperse")
        self._extender = futures.ThreadPoolExecutor(4, thread_name_prefix="extend")
        self._resume()

    # --- durable state -------------------------------------------------------------------

    def _request_path(self, request_id: str) -> Path:
        return self.state_dir / "requests" / f"{request_id}.json"

    def _payload_path(self, request_id: str) -> Path:
        return self.state_dir / "requests" / f"{request_id}.bin"

    def _blob_path(self, blob_id: str) -> Path:
        return self.state_dir / "blobs" / f"{blob_id}.bin"

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _save(self, dispersal: Dispersal) -> None:
        with self._lock:
            self._requests[dispersal.request_id] = dispersal
            self._write(self._request_path(dispersal.request_id), json.dumps(asdict(dispersal)).encode())

    def _resume(self) -> None:
        for path in sorted((self.state_dir / "requests").glob("*.json")):
            dispersal = Dispersal(**json.loads(path.read_text()))
            self._requests[dispersal.request_id] = dispersal
            if dispersal.status == PROCESSING and self._payload_path(dispersal.request_id).exists():
                self._workers.submit(self._run, dispersal.request_id)

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._extender.shutdown(wait=False, cancel_futures=True)

    # --- API -----------------------------------------------------------------------------

    def submit(self, data: bytes) -> str:
        """Accept a blob; raises ``BlobError`` for an empty or oversized one."""
        validate_blob_size(len(data))
        request_id = f"{hashlib.sha256(data).hexdigest()}-{time.time_ns()}"
        self._write(self._payload_path(request_id), data)
        self._save(Dispersal(request_id, len(data)))
        self._workers.submit(self._run, request_id)
        return request_id

    def status(self, request_id: str) -> Dispersal | None:
        with self._lock:
            dispersal = self._requests.get(request_id)
        if (
            dispersal is not None
            and dispersal.status == CONFIRMED
            and self.da.chain.block_number() >= dispersal.certificate_block + FINALITY_BLOCKS
        ):
            dispersal.status = FINALIZED
            dispersal.reason += f"; final (certificate {FINALITY_BLOCKS}+ blocks deep)"
            self._save(dispersal)
        return dispersal

    def retrieve(self, blob_id: bytes) -> bytes | None:
        try:
            return self._blob_path(blob_id.hex()).read_bytes()
        except FileNotFoundError:
            return None

    # --- processing ----------------------------------------------------------------------

    def _run(self, request_id: str) -> None:
        dispersal = self._requests[request_id]
        try:
            self._process(dispersal)
        except ZgError as exc:
            self._fail(dispersal, str(exc))
        except Exception as exc:  # a bug: report it on the request instead of losing it
            log.exception("dispersal %s crashed", request_id)
            self._fail(dispersal, f"internal error: {type(exc).__name__}: {exc}")

    def _fail(self, dispersal: Dispersal, reason: str) -> None:
        reason += self._refund(dispersal)
        dispersal.status = FAILED
        dispersal.reason = reason
        self._save(dispersal)
        self._payload_path(dispersal.request_id).unlink(missing_ok=True)

    def _refund(self, dispersal: Dispersal) -> str:
        """Cancel our still-uncertified blob so its fee comes back; describe what happened."""
        if not dispersal.blob_id:
            return ""
        blob_id = bytes.fromhex(dispersal.blob_id)
        try:
            record = self.da.blob(blob_id)
            if record.status is not BlobStatus.SUBMITTED or record.submitter != self.account.address:
                return ""
            receipt = self.da.cancel_blob(self.account, blob_id)
        except ZgError as exc:
            return f"; cancelling the blob failed ({exc}): cancel it with `zg da cancel 0x{dispersal.blob_id}`"
        return f"; blob cancelled, fee refunded in {receipt.tx_hash}"

    def _process(self, dispersal: Dispersal) -> None:
        started = time.monotonic()

        def phase(name: str) -> None:
            log.info("%s: %s done at %.3f s", dispersal.request_id[:12], name, time.monotonic() - started)

        data = self._payload_path(dispersal.request_id).read_bytes()
        dispersal.reason = "encoding"
        self._save(dispersal)
        rows = self.encoder.pack(data)
        header = self.encoder.commit(len(data), rows)
        phase("commit")
        # Cell proofs (the bulk of the work) run on the pool while the blob tx is mined.
        extending = self._extender.submit(self.encoder.extend, header, rows)
        blob_id = header.blob_id(self.account.address)
        dispersal.blob_id = blob_id.hex()
        dispersal.reason = "submitting the blob on chain"
        self._save(dispersal)
        epoch, quorum_id, certified = self._submit(header, blob_id)
        phase("submit blob")
        encoded = extending.result()
        phase("cells and proofs")
        if certified:
            self._write(self._blob_path(blob_id.hex()), data)
            dispersal.epoch, dispersal.quorum_id = epoch, quorum_id
            dispersal.status = CONFIRMED
            dispersal.reason = "already certified on chain"
            dispersal.certificate_block = self.da.chain.block_number()
            self._save(dispersal)
            self._payload_path(dispersal.request_id).unlink(missing_ok=True)
            return
        dispersal.epoch, dispersal.quorum_id = epoch, quorum_id
        dispersal.reason = f"collecting signatures (epoch {epoch})"
        self._save(dispersal)
        quorum = self.da.quorum(epoch)
        valid, failures = self._collect(encoded, blob_id, quorum, epoch, quorum_id)
        phase("collect signatures")
        signed = sum(quorum.stakes[quorum.index(a)] for a in valid)
        if signed * THRESHOLD_DENOMINATOR < quorum.total_stake * THRESHOLD_NUMERATOR:
            share = 100 * signed / quorum.total_stake
            raise ZgError(
                f"insufficient signatures: signers holding {share:.1f}% of the stake signed, "
                f"need 66.7%; {'; '.join(failures)}"
            )
        signature = bls.aggregate(list(valid.values()))
        receipt = self.da.submit_certificate(self.account, blob_id, list(valid), signature)
        phase("certificate")
        self._write(self._blob_path(blob_id.hex()), data)
        dispersal.status = CONFIRMED
        dispersal.reason = f"certified by {len(valid)} of {len(quorum.members)} signers" + (
            f" ({'; '.join(failures)})" if failures else ""
        )
        dispersal.certificate_tx = receipt.tx_hash
        dispersal.certificate_block = receipt.block_number
        dispersal.signers = sorted(valid)
        self._save(dispersal)
        self._payload_path(dispersal.request_id).unlink(missing_ok=True)

    def _submit(self, header: BlobHeader, blob_id: bytes) -> tuple[int, int, bool]:
        """Submit the blob (paying its fee) unless it is already on chain; returns its epoch,
        quorum and whether it is already certified. The same bytes dispersed twice reuse the
        record instead of failing (blob ids bind the submitter: only this disperser's own)."""
        try:
            record = self.da.blob(blob_id)
        except UnknownBlob:
            record = None
        if record is not None and record.status in (BlobStatus.SUBMITTED, BlobStatus.CERTIFIED):
            return record.epoch, 0, record.status is BlobStatus.CERTIFIED
        try:
            submitted = self.da.submit_blob(self.account, header)
        except TxReverted as exc:
            if "NoActiveSigners" not in exc.reason or not self._wait_for_next_quorum():
                raise
            submitted = self.da.submit_blob(self.account, header)
        return submitted.epoch, submitted.quorum_id, False

    def _wait_for_next_quorum(self) -> bool:
        """Right after signers register (a fresh devnet) the current epoch has no quorum yet:
        wait for the next epoch if it has one. False if nobody is registered for it."""
        epoch = self.da.current_epoch()
        if not self.da.quorum(epoch + 1).members:
            return False
        deadline = time.monotonic() + QUORUM_WAIT_S
        while self.da.current_epoch() == epoch:
            if time.monotonic() > deadline:
                return False
            time.sleep(SIGN_RETRY_DELAY_S)
        return True

    def _collect(
        self, encoded: EncodedBlob, blob_id: bytes, quorum: Quorum, epoch: int, quorum_id: int
    ) -> tuple[dict[str, bytes], list[str]]:
        """Valid signatures by signer address, and a description of every failure."""
        message = self.da.signing_message(blob_id, epoch, quorum_id)
        valid: dict[str, bytes] = {}
        failures: dict[str, str] = {}
        pending = list(quorum.members)
        for attempt in range(SIGN_ATTEMPTS):
            if attempt:
                time.sleep(SIGN_RETRY_DELAY_S)
            with futures.ThreadPoolExecutor(max(1, len(pending))) as pool:
                outcomes = list(pool.map(
                    lambda member: self._ask(encoded, blob_id, quorum, member, epoch, quorum_id, message), pending
                ))
            for outcome in outcomes:
                if outcome.signature is not None:
                    valid[outcome.address] = outcome.signature
                    failures.pop(outcome.address, None)
                else:
                    failures[outcome.address] = f"signer {outcome.address} ({outcome.url}): {outcome.error}"
            pending = [m for m in quorum.members if m not in valid]
            signed = sum(quorum.stakes[quorum.index(a)] for a in valid)
            if not pending or signed * THRESHOLD_DENOMINATOR >= quorum.total_stake * THRESHOLD_NUMERATOR:
                break
        return valid, list(failures.values())

    def _ask(
        self, encoded: EncodedBlob, blob_id: bytes, quorum: Quorum, member: str, epoch: int, quorum_id: int,
        message: bytes,
    ) -> SignerOutcome:
        url = quorum.urls[quorum.index(member)]
        try:
            with SignerClient(url, SIGN_TIMEOUT_S) as client:
                signature, _ = client.store_cells(
                    blob_id, epoch, quorum_id, encoded.column_cells(quorum.columns(member))
                )
        except ZgError as exc:
            return SignerOutcome(member, url, None, exc.message.split(": ", 1)[-1])
        if not bls.verify(self.da.pubkey(member), message, signature):
            log.warning("signer %s returned an invalid signature; excluded", member)
            return SignerOutcome(member, url, None, "invalid BLS signature (excluded)")
        return SignerOutcome(member, url, signature, "")


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
        info = None
        if dispersal.blob_id and dispersal.status in (CONFIRMED, FINALIZED):
            info = disperser_pb2.BlobInfo(blob_header=disperser_pb2.BlobHeader(
                storage_root=bytes.fromhex(dispersal.blob_id), epoch=dispersal.epoch, quorum_id=dispersal.quorum_id
            ))
        return disperser_pb2.BlobStatusReply(
            status=STATUS_CODES[dispersal.status], info=info, reason=dispersal.reason,
            certificate_tx=dispersal.certificate_tx,
        )

    def RetrieveBlob(self, request: disperser_pb2.RetrieveBlobRequest, context: grpc.ServicerContext) -> disperser_pb2.RetrieveBlobReply:
        blob_id = bytes(request.storage_root)
        if len(blob_id) != BLOB_ID_BYTES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"storage_root must be {BLOB_ID_BYTES} bytes")
        data = self.disperser.retrieve(blob_id)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no certified blob 0x{blob_id.hex()} at this disperser")
        return disperser_pb2.RetrieveBlobReply(data=data)


def serve_disperser(disperser: Disperser, host: str, port: int) -> grpc.Server:
    return serve(disperser_pb2_grpc.add_DisperserServicer_to_server, DisperserServicer(disperser), host, port,
                 DISPERSER_LIMITS)
