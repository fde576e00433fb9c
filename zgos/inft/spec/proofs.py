"""ERC-7857 transfer proofs as ``INFTVerifier`` checks them (issue 16; system.md §5.2–5.3).

A transfer (or clone) of a token carries one ``TransferProof`` per data item:

* **Ownership**: at least ``threshold`` registered oracles sign the EIP-712 message
  ``Ownership(address nft, bytes32 oldDataHash, bytes32 newDataHash, bytes sealedKey,
  bytes targetPubkey, bytes nonce)``: "the ciphertext at ``newDataHash`` is the plaintext of
  ``oldDataHash`` under a fresh key, and ``sealedKey`` seals that key to ``targetPubkey``".
  The signatures travel in ``OwnershipProof.proof`` as ``abi.encode(oldDataHash, bytes[])``,
  sorted by signer address (so none counts twice).
* **Access**: the receiver, or its delegated assistant, signs ``Access(address nft,
  bytes32 dataHash, bytes targetPubkey, bytes nonce)``: "I can retrieve and decrypt the new
  ciphertext". Both proofs carry the same data hash, receiver key and nonce.
* **Request** (off chain): the token's owner signs ``Reencrypt(address nft, uint256 tokenId,
  bytes32 oldDataHash, bytes targetPubkey, bytes nonce)`` to ask the oracles for the above.
* The domain is ``EIP712Domain("zgos INFT verifier", "1", chainId, verifier)``; ``nft`` is the
  token contract, which alone can spend the nonce.

0G's verifier accepts one TEE signature that binds no old data hash, and never checks that the
new data is stored; ``INFTVerifier`` also requires ``newDataHash`` to be a root on ``Flow``.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import encode

from zgos.core.errors import ZgError
from zgos.core.hashing import HASH_BYTES, keccak256
from zgos.core.signatures import EIP712_PREFIX, normalize_address, recover_digest, sign_digest

DOMAIN_NAME = "zgos INFT verifier"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
ACCESS_TYPE = b"Access(address nft,bytes32 dataHash,bytes targetPubkey,bytes nonce)"
OWNERSHIP_TYPE = (b"Ownership(address nft,bytes32 oldDataHash,bytes32 newDataHash,bytes sealedKey,"
                  b"bytes targetPubkey,bytes nonce)")
REQUEST_TYPE = b"Reencrypt(address nft,uint256 tokenId,bytes32 oldDataHash,bytes targetPubkey,bytes nonce)"
PUBKEY_BYTES = 64  # x || y of a secp256k1 key, as the contract takes it
MAX_NONCE_BYTES = 64  # INFTVerifier.MAX_NONCE_BYTES
MAX_SEALED_KEY_BYTES = 256  # INFTVerifier.MAX_SEALED_KEY_BYTES
ORACLE_TYPE_TEE = 0  # the only type INFTVerifier accepts (zgos oracles are signers, not TEEs)


class InvalidProof(ZgError):
    """A proof that ``INFTVerifier`` would refuse, caught before it costs gas."""


@dataclass(frozen=True)
class ProofDomain:
    """One ``INFTVerifier`` on one chain, and the token contract that spends the proofs."""

    chain_id: int
    verifier: str
    nft: str

    def separator(self) -> bytes:
        return keccak256(keccak256(DOMAIN_TYPE) + keccak256(DOMAIN_NAME.encode())
                         + keccak256(DOMAIN_VERSION.encode()) + self.chain_id.to_bytes(32, "big")
                         + _word_address(self.verifier))

    def digest(self, struct_hash: bytes) -> bytes:
        return keccak256(EIP712_PREFIX + self.separator() + struct_hash)


def _word_address(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(normalize_address(address)[2:])


def _check(size_ok: bool, what: str) -> None:
    if not size_ok:
        raise InvalidProof(what)


@dataclass(frozen=True)
class Reencryption:
    """What the oracles vouch for, for one data item."""

    old_data_hash: bytes
    new_data_hash: bytes
    sealed_key: bytes
    target_pubkey: bytes
    nonce: bytes

    def __post_init__(self) -> None:
        _check(len(self.old_data_hash) == HASH_BYTES and len(self.new_data_hash) == HASH_BYTES,
               "data hashes are 32 bytes")
        _check(len(self.target_pubkey) == PUBKEY_BYTES, f"the receiver key is {PUBKEY_BYTES} bytes (x || y)")
        _check(1 <= len(self.nonce) <= MAX_NONCE_BYTES, f"a nonce is 1 to {MAX_NONCE_BYTES} bytes")
        _check(len(self.sealed_key) <= MAX_SEALED_KEY_BYTES, f"a sealed key is at most {MAX_SEALED_KEY_BYTES} bytes")


def compute_ownership_digest(domain: ProofDomain, r: Reencryption) -> bytes:
    """The EIP-712 digest each oracle signs for ``r``."""
    return domain.digest(keccak256(
        keccak256(OWNERSHIP_TYPE) + _word_address(domain.nft) + r.old_data_hash + r.new_data_hash
        + keccak256(r.sealed_key) + keccak256(r.target_pubkey) + keccak256(r.nonce)))


def compute_access_digest(domain: ProofDomain, data_hash: bytes, target_pubkey: bytes, nonce: bytes) -> bytes:
    """The EIP-712 digest the receiver (or its assistant) signs to accept the new data."""
    return domain.digest(keccak256(
        keccak256(ACCESS_TYPE) + _word_address(domain.nft) + data_hash + keccak256(target_pubkey) + keccak256(nonce)))


def compute_request_digest(domain: ProofDomain, token_id: int, old_data_hash: bytes, target_pubkey: bytes,
                           nonce: bytes) -> bytes:
    """The EIP-712 digest a token's owner signs to ask the oracles to re-encrypt one of its
    data items for ``target_pubkey`` (oracles serve owners only: each request costs them an
    upload)."""
    return domain.digest(keccak256(
        keccak256(REQUEST_TYPE) + _word_address(domain.nft) + token_id.to_bytes(32, "big") + old_data_hash
        + keccak256(target_pubkey) + keccak256(nonce)))


def sign_ownership(domain: ProofDomain, r: Reencryption, private_key: bytes) -> bytes:
    return sign_digest(private_key, compute_ownership_digest(domain, r))


def sign_access(domain: ProofDomain, r: Reencryption, private_key: bytes) -> bytes:
    return sign_digest(private_key, compute_access_digest(domain, r.new_data_hash, r.target_pubkey, r.nonce))


def recover_ownership_signer(domain: ProofDomain, r: Reencryption, signature: bytes) -> str:
    return recover_digest(compute_ownership_digest(domain, r), signature)


def order_signatures(domain: ProofDomain, r: Reencryption, signatures: list[bytes]) -> list[bytes]:
    """The signatures sorted by signer, one per signer (the order the verifier requires)."""
    by_signer = {int(recover_ownership_signer(domain, r, s), 16): s for s in signatures}
    return [by_signer[signer] for signer in sorted(by_signer)]


def encode_oracle_proof(old_data_hash: bytes, signatures: list[bytes]) -> bytes:
    """``OwnershipProof.proof``: ``abi.encode(bytes32 oldDataHash, bytes[] signatures)``."""
    return encode(["bytes32", "bytes[]"], [old_data_hash, signatures])


@dataclass(frozen=True)
class TransferProof:
    """One ``TransferValidityProof``: the oracles' re-encryption and the receiver's acceptance."""

    reencryption: Reencryption
    oracle_signatures: tuple[bytes, ...]
    access_signature: bytes

    def as_abi(self) -> tuple[tuple[object, ...], tuple[object, ...]]:
        """The struct as web3 passes it: ``((dataHash, targetPubkey, nonce, proof),
        (oracleType, dataHash, sealedKey, targetPubkey, nonce, proof))``."""
        r = self.reencryption
        access = (r.new_data_hash, r.target_pubkey, r.nonce, self.access_signature)
        ownership = (ORACLE_TYPE_TEE, r.new_data_hash, r.sealed_key, r.target_pubkey, r.nonce,
                     encode_oracle_proof(r.old_data_hash, list(self.oracle_signatures)))
        return access, ownership


def compute_pubkey_address(pubkey: bytes) -> str:
    """The address of a 64-byte public key: the last 20 bytes of its keccak256."""
    _check(len(pubkey) == PUBKEY_BYTES, f"a public key here is {PUBKEY_BYTES} bytes (x || y)")
    return "0x" + keccak256(pubkey)[-20:].hex()
