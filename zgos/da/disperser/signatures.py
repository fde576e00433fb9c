"""Collecting a blob's signatures: every quorum member gets its columns in parallel; each
returned BLS signature is checked against the member's registered key (a bad one is excluded
and named); members that failed are asked again once, until the valid signers reach the quorum
(``zgos.da.spec.quorum``).

Several blobs are collected at once (one per dispersal thread): the requests to signers run on
one shared thread pool over one gRPC channel per signer URL, kept open between blobs. A URL is
one a signer announced on chain, so it is resolved and checked against the outbound policy
first, and the channel pinned to the checked address: a member that names a loopback or
private address the policy does not allow is refused, not called."""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import httpx

from zgos.da.client import SignerClient
from zgos.da.contracts import DAContracts, Quorum
from zgos.da.rpc import RpcError
from zgos.da.spec import bls
from zgos.da.spec.encoding import EncodedBlob
from zgos.da.spec.quorum import is_quorum_reached
from zgos.runtime.addresses import AddressPolicy
from zgos.runtime.outbound import pin_target

log = logging.getLogger(__name__)

SIGN_ATTEMPTS = 2
SIGN_RETRY_DELAY_S = 0.5
SIGN_TIMEOUT_S = 30.0
SIGN_THREADS = 32  # signer requests in flight, over every blob being collected


@dataclass(frozen=True)
class SigningRequest:
    """One blob to have signed by one epoch's quorum."""

    encoded: EncodedBlob
    blob_id: bytes
    quorum: Quorum
    quorum_id: int
    message: bytes  # what each signer signs (DAEntrance.signingMessage)


@dataclass(frozen=True)
class SignerOutcome:
    address: str
    url: str
    signature: bytes | None
    error: str


@dataclass
class Signatures:
    """Valid signatures by signer address, and a description of every failure by address."""

    valid: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def record(self, outcome: SignerOutcome) -> None:
        if outcome.signature is not None:
            self.valid[outcome.address] = outcome.signature
            self.failures.pop(outcome.address, None)
        else:
            self.failures[outcome.address] = f"signer {outcome.address} ({outcome.url}): {outcome.error}"


class SignatureCollector:
    def __init__(self, da: DAContracts, policy: AddressPolicy, timeout_s: float = SIGN_TIMEOUT_S) -> None:
        self.da = da
        self.policy = policy
        self.timeout_s = timeout_s
        self._pool = futures.ThreadPoolExecutor(SIGN_THREADS, thread_name_prefix="sign")
        self._clients: dict[str, SignerClient] = {}
        self._clients_lock = threading.Lock()

    def close(self) -> None:
        """Stop asking (queued requests are cancelled); calls in flight finish on their channels."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _client(self, url: str) -> SignerClient:
        """The open channel to ``url`` (gRPC channels reconnect by themselves and are
        thread-safe), pinned to the address the policy allowed; ``httpx.TransportError`` if it
        refused the address or the host does not resolve (resolved outside the lock: a slow
        name server holds up only its own signer)."""
        with self._clients_lock:
            known = self._clients.get(url)
        if known is not None:
            return known
        fresh = SignerClient(pin_target(url, self.policy, self.timeout_s), self.timeout_s)
        with self._clients_lock:
            kept = self._clients.setdefault(url, fresh)
        if kept is not fresh:
            fresh.close()
        return kept

    def _drop_client(self, url: str) -> None:
        """Forget a channel that failed: a channel to a restarted signer may sit in gRPC's
        reconnect backoff, the retry gets a fresh one. Not closed here: other blobs' requests
        may still be using it; it closes once the last of them lets go of it."""
        with self._clients_lock:
            self._clients.pop(url, None)

    def collect(self, encoded: EncodedBlob, blob_id: bytes, quorum: Quorum, quorum_id: int) -> Signatures:
        """Ask every member, then again those that failed, until the quorum is reached."""
        request = SigningRequest(encoded, blob_id, quorum, quorum_id,
                                 self.da.signing_message(blob_id, quorum.epoch, quorum_id))
        signatures = Signatures()
        pending = list(quorum.members)
        for attempt in range(SIGN_ATTEMPTS):
            if attempt:
                time.sleep(SIGN_RETRY_DELAY_S)
            for outcome in list(self._pool.map(lambda member: self._ask(request, member), pending)):
                signatures.record(outcome)
            pending = [m for m in quorum.members if m not in signatures.valid]
            if not pending or is_quorum_reached(quorum.signed_stake(signatures.valid), quorum.total_stake):
                break
        return signatures

    def _ask(self, request: SigningRequest, member: str) -> SignerOutcome:
        quorum = request.quorum
        url = quorum.urls[quorum.index(member)]
        try:
            signature, _ = self._client(url).store_cells(
                request.blob_id, quorum.epoch, request.quorum_id,
                request.encoded.column_cells(quorum.columns(member)),
            )
        except RpcError as exc:
            self._drop_client(url)
            return SignerOutcome(member, url, None, exc.reason)
        except httpx.TransportError as exc:  # its announced address was refused or does not resolve
            return SignerOutcome(member, url, None, f"not called: {exc}")
        if not bls.verify(self.da.pubkey(member), request.message, signature):
            log.warning("signer %s returned an invalid signature; excluded", member)
            return SignerOutcome(member, url, None, "invalid BLS signature (excluded)")
        return SignerOutcome(member, url, signature, "")
