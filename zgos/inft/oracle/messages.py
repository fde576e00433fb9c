"""What owners, oracles and receivers send each other (JSON, bytes as 0x hex), and the
checks every message passes before anything acts on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from zgos.inft.spec.keys import HANDOVER_BYTES, SEALED_KEY_BYTES
from zgos.inft.spec.proofs import MAX_NONCE_BYTES, PUBKEY_BYTES, InvalidProof, Reencryption
from zgos.storage.spec.encryption import ECIES_HEADER_SIZE

MAX_ORACLES = 16  # INFTVerifier.MAX_ORACLES
SIGNATURE_BYTES = 65
SEALED_HANDOVER_BYTES = ECIES_HEADER_SIZE + HANDOVER_BYTES


def hex_of(data: bytes) -> str:
    return "0x" + data.hex()


def _bytes(obj: dict[str, Any], name: str, lo: int, hi: int) -> bytes:
    value = obj.get(name)
    try:
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or not lo <= len(raw) <= hi:
        size = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise InvalidProof(f"{name} must be 0x-hex of {size} bytes")
    return raw


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidProof(f"{what} must be a JSON object")
    return value


@dataclass(frozen=True)
class ReencryptRequest:
    """An owner's request: re-encrypt data item ``old_data_hash`` of ``token_id`` for
    ``target_pubkey``. ``sealed_keys`` holds its data key sealed to each oracle."""

    token_id: int
    old_data_hash: bytes
    target_pubkey: bytes
    nonce: bytes
    sealed_keys: dict[str, bytes]  # checksummed oracle address -> sealed data key
    signature: bytes  # the owner's, over compute_request_digest

    def to_json(self) -> dict[str, Any]:
        return {"tokenId": self.token_id, "oldDataHash": hex_of(self.old_data_hash),
                "targetPubkey": hex_of(self.target_pubkey), "nonce": hex_of(self.nonce),
                "sealedKeys": {a: hex_of(k) for a, k in self.sealed_keys.items()},
                "signature": hex_of(self.signature)}

    @classmethod
    def from_json(cls, value: Any) -> ReencryptRequest:
        obj = _object(value, "the request")
        token = obj.get("tokenId")
        if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < 2**256:
            raise InvalidProof("tokenId must be a uint256")
        keys = _object(obj.get("sealedKeys"), "sealedKeys")
        if not 1 <= len(keys) <= MAX_ORACLES or not all(isinstance(a, str) and is_address(a) for a in keys):
            raise InvalidProof(f"sealedKeys maps 1 to {MAX_ORACLES} oracle addresses to sealed keys")
        return cls(token, _bytes(obj, "oldDataHash", 32, 32), _bytes(obj, "targetPubkey", PUBKEY_BYTES, PUBKEY_BYTES),
                   _bytes(obj, "nonce", 1, MAX_NONCE_BYTES),
                   {to_checksum_address(a): _bytes(keys, a, SEALED_KEY_BYTES, SEALED_KEY_BYTES) for a in keys},
                   _bytes(obj, "signature", SIGNATURE_BYTES, SIGNATURE_BYTES))


@dataclass(frozen=True)
class Endorsement:
    """The leading oracle's ask to a peer: check this re-encryption and sign it. ``handover``
    is (new key, sealing ephemeral secret, sealing nonce) sealed to the peer."""

    request: ReencryptRequest
    new_data_hash: bytes
    sealed_key: bytes
    handover: bytes

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_json(), "newDataHash": hex_of(self.new_data_hash),
                "sealedKey": hex_of(self.sealed_key), "handover": hex_of(self.handover)}

    @classmethod
    def from_json(cls, value: Any) -> Endorsement:
        obj = _object(value, "the endorsement")
        return cls(ReencryptRequest.from_json(obj.get("request")), _bytes(obj, "newDataHash", 32, 32),
                   _bytes(obj, "sealedKey", SEALED_KEY_BYTES, SEALED_KEY_BYTES),
                   _bytes(obj, "handover", SEALED_HANDOVER_BYTES, SEALED_HANDOVER_BYTES))

    def reencryption(self) -> Reencryption:
        r = self.request
        return Reencryption(r.old_data_hash, self.new_data_hash, self.sealed_key, r.target_pubkey, r.nonce)


@dataclass(frozen=True)
class Vouched:
    """The oracles' answer: the re-encryption and their signatures over it."""

    reencryption: Reencryption
    signatures: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        r = self.reencryption
        return {"oldDataHash": hex_of(r.old_data_hash), "newDataHash": hex_of(r.new_data_hash),
                "sealedKey": hex_of(r.sealed_key), "targetPubkey": hex_of(r.target_pubkey), "nonce": hex_of(r.nonce),
                "signatures": [hex_of(s) for s in self.signatures]}

    @classmethod
    def from_json(cls, value: Any) -> Vouched:
        obj = _object(value, "the answer")
        signatures = obj.get("signatures")
        if not isinstance(signatures, list) or len(signatures) > MAX_ORACLES:
            raise InvalidProof(f"signatures must be a list of at most {MAX_ORACLES}")
        r = Reencryption(_bytes(obj, "oldDataHash", 32, 32), _bytes(obj, "newDataHash", 32, 32),
                         _bytes(obj, "sealedKey", SEALED_KEY_BYTES, SEALED_KEY_BYTES),
                         _bytes(obj, "targetPubkey", PUBKEY_BYTES, PUBKEY_BYTES), _bytes(obj, "nonce", 1, MAX_NONCE_BYTES))
        sigs = tuple(_bytes({"s": s}, "s", SIGNATURE_BYTES, SIGNATURE_BYTES) for s in signatures)
        return cls(r, sigs)
