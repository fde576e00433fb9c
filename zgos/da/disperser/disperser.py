"""The disperser: takes a blob, has it signed by the epoch's quorum and certified on chain.

A request moves PROCESSING -> CONFIRMED -> FINALIZED, or PROCESSING -> FAILED with a reason.
Processing (``Disperser._process``): commit the rows (process pool) -> ``DAEntrance.submitBlob``
with the fee, while the pool computes the cells and proofs -> read the epoch's quorum -> send
every signer its columns in parallel -> verify each returned BLS signature against the signer's
registered key (bad ones are excluded and named) -> if the valid signers hold >= 2/3 of the
stake (``zgos.da.spec.quorum``), aggregate and submit the certificate; otherwise retry the
missing signers, then cancel the blob on-chain so the fee is refunded and report FAILED with
every signer's failure. CONFIRMED becomes FINALIZED once the certificate is ``FINALITY_BLOCKS``
deep.

Pipelining: up to ``BLOBS_IN_FLIGHT`` requests are processed at once, each on its own thread.
Their encoding is queued blob after blob on the shared pool (``Encoder.start``), so one blob's
cells are computed while earlier blobs wait for their blob transaction, their signatures and
their certificate transaction. Transactions of different blobs take consecutive nonces
(``zgos.chain.nonces``) and are mined together; none waits for another's receipt.

Durability: a request's payload and state are written (fsynced) to the service directory
before ``DisperseBlob`` answers (``DispersalStore``); after a restart unfinished requests are
processed again (an already-submitted blob is reused, not paid twice).
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent import futures
from pathlib import Path

from eth_account.signers.local import LocalAccount

from zgos.chain.client import Receipt
from zgos.core.errors import ZgError
from zgos.da.contracts import BlobStatus, DAContracts, NoActiveSigners, UnknownBlob
from zgos.da.disperser.signatures import SignatureCollector
from zgos.da.disperser.state import CONFIRMED, FAILED, FINALIZED, Dispersal, DispersalStore
from zgos.da.spec import bls
from zgos.da.spec.blob import BlobHeader, validate_blob_size
from zgos.da.spec.encoding import EncodedBlob, Encoder, EncodingJob
from zgos.da.spec.quorum import (
    THRESHOLD_DENOMINATOR,
    THRESHOLD_NUMERATOR,
    is_quorum_reached,
    stake_share_percent,
)
from zgos.runtime.access import TOKEN_FILE, load_or_create_token
from zgos.runtime.addresses import AddressPolicy

log = logging.getLogger(__name__)

FINALITY_BLOCKS = 3
QUORUM_WAIT_S = 120.0
QUORUM_POLL_S = 0.5
THRESHOLD_PERCENT = 100 * THRESHOLD_NUMERATOR / THRESHOLD_DENOMINATOR
BLOBS_IN_FLIGHT = 8  # requests processed at once (each holds its blob's cells until certified)

class InsufficientSignatures(ZgError):
    """The signers that signed validly hold less than the quorum's 2/3 of the stake."""


class PhaseTimer:
    """Logs how long after the start each phase of one request ended."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = time.monotonic()

    def __call__(self, name: str) -> None:
        log.info("%s: %s done at %.3f s", self.request_id[:12], name, time.monotonic() - self.started)


class Disperser:
    def __init__(self, da: DAContracts, account: LocalAccount, encoder: Encoder, state_dir: Path,
                 policy: AddressPolicy) -> None:
        self.da = da
        self.account = account
        self.encoder = encoder
        self.store = DispersalStore(state_dir)
        self.collector = SignatureCollector(da, policy)
        self.token_path = state_dir / TOKEN_FILE
        self.token = load_or_create_token(self.token_path)
        self._workers = futures.ThreadPoolExecutor(BLOBS_IN_FLIGHT, thread_name_prefix="disperse")
        for request_id in self.store.unfinished():
            self._workers.submit(self._run, request_id)

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        self.collector.close()

    # --- API -----------------------------------------------------------------------------

    def submit(self, data: bytes) -> str:
        """Accept a blob; raises ``BlobError`` for an empty or oversized one."""
        validate_blob_size(len(data))
        request_id = f"{hashlib.sha256(data).hexdigest()}-{time.time_ns()}"
        self.store.put_payload(request_id, data)
        self.store.save(Dispersal(request_id, len(data)))
        self._workers.submit(self._run, request_id)
        return request_id

    def status(self, request_id: str) -> Dispersal | None:
        dispersal = self.store.get(request_id)
        if (
            dispersal is not None
            and dispersal.status == CONFIRMED
            and self.da.chain.block_number() >= dispersal.certificate_block + FINALITY_BLOCKS
        ):
            dispersal.status = FINALIZED
            dispersal.reason += f"; final (certificate {FINALITY_BLOCKS}+ blocks deep)"
            self.store.save(dispersal)
        return dispersal

    def retrieve(self, blob_id: bytes) -> bytes | None:
        return self.store.blob(blob_id.hex())

    # --- processing ----------------------------------------------------------------------

    def _run(self, request_id: str) -> None:
        dispersal = self.store.get(request_id)
        assert dispersal is not None, request_id
        try:
            self._process(dispersal)
        except futures.CancelledError:  # the service is stopping: the request resumes at the next start
            log.info("dispersal %s interrupted by shutdown; it resumes at the next start", request_id)
        except ZgError as exc:
            self._fail(dispersal, str(exc))
        except Exception as exc:  # a bug: report it on the request instead of losing it
            log.exception("dispersal %s crashed", request_id)
            self._fail(dispersal, f"internal error: {type(exc).__name__}: {exc}")

    def _fail(self, dispersal: Dispersal, reason: str) -> None:
        reason += self._refund(dispersal)
        dispersal.status = FAILED
        dispersal.reason = reason
        self.store.save(dispersal)
        self.store.drop_payload(dispersal.request_id)

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

    def _update(self, dispersal: Dispersal, reason: str) -> None:
        dispersal.reason = reason
        self.store.save(dispersal)

    def _process(self, dispersal: Dispersal) -> None:
        """Encode, submit, then have the blob certified (or find it certified already)."""
        phase = PhaseTimer(dispersal.request_id)
        data = self.store.payload(dispersal.request_id)
        self._update(dispersal, "encoding")
        # Cell proofs (the bulk of the work) run on the pool while the blob tx is mined.
        job = self.encoder.start(len(data), self.encoder.pack(data))
        try:
            self._submit_and_certify(dispersal, data, job, phase)
        finally:
            job.cancel()  # after a failure: free the pool for the next blobs

    def _submit_and_certify(self, dispersal: Dispersal, data: bytes, job: EncodingJob, phase: PhaseTimer) -> None:
        header = job.header()
        phase("commit")
        blob_id = header.blob_id(self.account.address)
        dispersal.blob_id = blob_id.hex()
        self._update(dispersal, "submitting the blob on chain")
        epoch, quorum_id, certified = self._submit(header, blob_id)
        phase("submit blob")
        dispersal.epoch, dispersal.quorum_id = epoch, quorum_id
        if certified:
            self._confirm(dispersal, data, "already certified on chain", block=self.da.chain.block_number())
            return
        encoded = job.encoded()
        phase("cells and proofs")
        self._update(dispersal, f"collecting signatures (epoch {epoch})")
        self._certify(dispersal, data, encoded, phase)

    def _certify(self, dispersal: Dispersal, data: bytes, encoded: EncodedBlob, phase: PhaseTimer) -> None:
        """Collect the quorum's signatures and submit their aggregate as the certificate."""
        blob_id = bytes.fromhex(dispersal.blob_id)
        quorum = self.da.quorum(dispersal.epoch)
        signatures = self.collector.collect(encoded, blob_id, quorum, dispersal.quorum_id)
        phase("collect signatures")
        failures = list(signatures.failures.values())
        signed = quorum.signed_stake(signatures.valid)
        if not is_quorum_reached(signed, quorum.total_stake):
            raise InsufficientSignatures(
                f"insufficient signatures: signers holding {stake_share_percent(signed, quorum.total_stake):.1f}% "
                f"of the stake signed, need {THRESHOLD_PERCENT:.1f}%; {'; '.join(failures)}"
            )
        signature = bls.aggregate(list(signatures.valid.values()))
        receipt = self.da.submit_certificate(self.account, blob_id, list(signatures.valid), signature)
        phase("certificate")
        reason = f"certified by {len(signatures.valid)} of {len(quorum.members)} signers" + (
            f" ({'; '.join(failures)})" if failures else ""
        )
        self._confirm(dispersal, data, reason, receipt, signers=sorted(signatures.valid))

    def _confirm(self, dispersal: Dispersal, data: bytes, reason: str, receipt: Receipt | None = None, *,
                 block: int = 0, signers: list[str] | None = None) -> None:
        """Keep the certified blob's bytes and mark the request CONFIRMED."""
        self.store.put_blob(dispersal.blob_id, data)
        dispersal.status = CONFIRMED
        dispersal.reason = reason
        if receipt is not None:
            dispersal.certificate_tx, block = receipt.tx_hash, receipt.block_number
        dispersal.certificate_block = block
        dispersal.signers = signers or []
        self.store.save(dispersal)
        self.store.drop_payload(dispersal.request_id)

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
        except NoActiveSigners:
            if not self._wait_for_next_quorum():
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
            time.sleep(QUORUM_POLL_S)
        return True
