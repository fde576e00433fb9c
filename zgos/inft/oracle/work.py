"""What an INFT oracle does for a transfer (issue 16 §3; system.md §5.3).

**Lead** (``reencrypt``), for one data item of a token:
1. check the request: signed by the token's owner, naming one of the token's data hashes;
2. open the data key sealed to this oracle, download the old ciphertext (every segment proven
   against its root) and decrypt it, refusing a key that fails the file's key check;
3. encrypt the plaintext under a fresh key and upload it (finalized before going on);
4. seal the new key to the receiver (ECIES, fresh ephemeral secret and nonce) and sign;
5. ask the other oracles to endorse, handing each the new key and the sealing secrets sealed
   to it, until ``threshold`` signatures are in.

**Endorse**: the same request checks, then: the sealed key is re-derived from the handed-over
secrets byte for byte, and the old and new ciphertexts, each decrypted with its checked key,
have the same plaintext (sha256). Only then does the oracle sign.

A lead that cheats (wrong data, a key sealed to someone else) gets no endorsement; an oracle
that is down or refuses is skipped, so with 3 oracles and a threshold of 2 one dishonest or
offline oracle can neither forge a transfer nor block one. Nothing is kept between calls: a
request cut by a crash is simply asked again (a new upload, a new nonce).

These oracles are trusted signers, not TEEs: each one sees the plaintext it re-encrypts.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from zgos.core.signatures import recover_digest
from zgos.inft.contracts import InftContracts
from zgos.inft.oracle.messages import Endorsement, ReencryptRequest, Vouched
from zgos.inft.oracles import OracleEndpoint, OracleError
from zgos.inft.spec.keys import (
    HANDOVER_BYTES,
    compute_raw_pubkey,
    decode_handover,
    encode_handover,
    seal,
    unseal,
    unseal_key,
)
from zgos.inft.spec.proofs import (
    Reencryption,
    compute_request_digest,
    order_signatures,
    sign_ownership,
)
from zgos.storage.client import StorageClient
from zgos.storage.encrypted import (
    Keys,
    Recipient,
    download_decrypted,
    new_ephemeral_secret,
    upload_encrypted,
)
from zgos.storage.spec.encryption import AES_KEY_SIZE, NONCE_SIZE

log = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1024 * 1024

EndorseCall = Callable[[OracleEndpoint, Endorsement], bytes]  # a lead asking a peer (HTTP in the service)


class OracleWork:
    def __init__(self, account: LocalAccount, contracts: InftContracts, storage: StorageClient, work_dir: Path,
                 max_data_bytes: int) -> None:
        self.account = account
        self.secret = bytes(account.key)
        self.pubkey = compute_raw_pubkey(self.secret)
        self.contracts = contracts
        self.storage = storage
        self.work_dir = work_dir
        self.max_data_bytes = max_data_bytes

    # --- shared checks -------------------------------------------------------------------

    def check_request(self, request: ReencryptRequest) -> None:
        """The owner of the token signed the request, and the data is the token's."""
        digest = compute_request_digest(self.contracts.domain(), request.token_id, request.old_data_hash,
                                        request.target_pubkey, request.nonce)
        signer = to_checksum_address(recover_digest(digest, request.signature))
        owner = self.contracts.owner_of(request.token_id)
        if signer != owner:
            raise OracleError(f"the request is signed by {signer}, not by the token's owner {owner}")
        if request.old_data_hash not in {d.data_hash for d in self.contracts.datas_of(request.token_id)}:
            raise OracleError(f"token {request.token_id} holds no data 0x{request.old_data_hash.hex()}")

    def _own_sealed_key(self, request: ReencryptRequest) -> bytes:
        sealed = request.sealed_keys.get(to_checksum_address(self.account.address))
        if sealed is None:
            raise OracleError(f"the request seals no key to this oracle ({self.account.address})")
        return unseal_key(self.secret, sealed)

    def _plaintext(self, root: bytes, key: bytes, out: Path) -> Path:
        """Download ``root`` and decrypt it with ``key`` into ``out``, refused unless the file's
        key check on chain confirms the key."""
        size = self.storage.size_of(root)
        if size is None or size > self.max_data_bytes:
            raise OracleError(f"0x{root.hex()} is {size} bytes: this oracle re-encrypts at most {self.max_data_bytes}")
        if not download_decrypted(self.storage, root, out, Keys(symmetric_key=key)).checked:
            raise OracleError(f"0x{root.hex()} has no key check on chain: this oracle cannot tell a right key")
        return out

    @staticmethod
    def _sha256(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as plain:
            while chunk := plain.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    # --- lead ------------------------------------------------------------------------------

    def reencrypt(self, request: ReencryptRequest, peers: list[OracleEndpoint], threshold: int,
                  endorse: EndorseCall) -> Vouched:
        self.check_request(request)
        old_key = self._own_sealed_key(request)
        new_key, ephemeral, seal_nonce = secrets.token_bytes(AES_KEY_SIZE), new_ephemeral_secret(), secrets.token_bytes(NONCE_SIZE)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            plain = Path(tmp) / "plain"
            self._plaintext(request.old_data_hash, old_key, plain)
            uploaded = upload_encrypted(self.storage, plain, Recipient(symmetric_key=new_key), Path(tmp) / "staging")
        r = Reencryption(request.old_data_hash, uploaded.root, seal(request.target_pubkey, new_key, ephemeral, seal_nonce),
                         request.target_pubkey, request.nonce)
        signatures = [sign_ownership(self.contracts.domain(), r, self.secret)]
        handover = encode_handover(new_key, ephemeral, seal_nonce)
        for peer in peers:
            if len(signatures) >= threshold:
                break
            if peer.address == to_checksum_address(self.account.address) or peer.address not in request.sealed_keys:
                continue
            sealed = seal(peer.pubkey, handover, new_ephemeral_secret(), secrets.token_bytes(NONCE_SIZE))
            try:
                signatures.append(endorse(peer, Endorsement(request, r.new_data_hash, r.sealed_key, sealed)))
            except OracleError as exc:
                log.warning("oracle %s did not endorse: %s", peer.address, exc)
        if len(signatures) < threshold:
            raise OracleError(f"only {len(signatures)} of the {threshold} oracle signatures needed",
                              "start the other oracles (zg devnet status) and retry")
        return Vouched(r, tuple(order_signatures(self.contracts.domain(), r, signatures)))

    # --- endorse ---------------------------------------------------------------------------

    def endorse(self, endorsement: Endorsement) -> bytes:
        request = endorsement.request
        self.check_request(request)
        old_key = self._own_sealed_key(request)
        new_key, ephemeral, seal_nonce = decode_handover(unseal(self.secret, endorsement.handover, HANDOVER_BYTES))
        r = endorsement.reencryption()
        if seal(request.target_pubkey, new_key, ephemeral, seal_nonce) != r.sealed_key:
            raise OracleError("the sealed key does not seal the handed-over key to the receiver")
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            old = self._sha256(self._plaintext(r.old_data_hash, old_key, Path(tmp) / "old"))
            new = self._sha256(self._plaintext(r.new_data_hash, new_key, Path(tmp) / "new"))
        if old != new:
            raise OracleError("the new ciphertext does not hold the old plaintext")
        return sign_ownership(self.contracts.domain(), r, self.secret)
