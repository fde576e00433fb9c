"""Client-side encryption of stored bytes, in 0G's format (issue 15 §5).

An encrypted file (or KV value) is a header followed by the plaintext under AES-256-CTR. 0G's
clients write and read the same bytes: the Go client's ``core/encryption.go`` and
``core/ecies.go`` (0g-storage-client), and the TS SDK's ``common/encryption.js`` and
``file/EncryptedFile.js``.

- **v1** (symmetric): header = ``0x01 || nonce[16]`` (17 bytes); the 32-byte AES key is the
  user's.
- **v2** (ECIES to a secp256k1 wallet key): header = ``0x02 || ephemeral_pub[33] || nonce[16]``
  (50 bytes); the AES key is HKDF-SHA256 of the x coordinate of the ECDH point between the
  ephemeral key and the recipient's key (salt empty, info ``ECIES_HKDF_INFO``).
- The keystream block for plaintext byte ``offset`` is AES(key, nonce + offset // 16), a
  big-endian 128-bit add; so any byte range decrypts on its own, equal to a full decryption.

The format has no MAC: a wrong key yields garbage, silently. zgos adds a **key check** that
0G's clients ignore: an upload puts ``KEY_CHECK_MAGIC || check`` in the submission's tags, with
``check`` the first 16 bytes of ``sha256(KEY_CHECK_DOMAIN || aes_key || nonce)``; a download
compares it before writing any plaintext. A file without the tag (written by 0G's clients)
decrypts unchecked. Nothing here does I/O or draws randomness: nonces and ephemeral secrets
are passed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from zgos.core.errors import ZgError

SYMMETRIC_VERSION = 1  # v1: user-supplied AES key
ECIES_VERSION = 2  # v2: AES key from ECIES to a secp256k1 key
NONCE_SIZE = 16  # bytes; also the initial CTR counter block
AES_KEY_SIZE = 32  # bytes (AES-256)
AES_BLOCK_SIZE = 16  # bytes per CTR counter step
COUNTER_MODULUS = 2**128  # the counter block is a 128-bit big-endian integer
PRIVATE_KEY_SIZE = 32  # bytes of a secp256k1 secret scalar
EPHEMERAL_PUBKEY_SIZE = 33  # bytes of a compressed secp256k1 point
UNCOMPRESSED_PUBKEY_SIZE = 65  # 0x04 || x || y
RAW_PUBKEY_SIZE = 64  # x || y, no prefix
SYMMETRIC_HEADER_SIZE = 1 + NONCE_SIZE  # 17
ECIES_HEADER_SIZE = 1 + EPHEMERAL_PUBKEY_SIZE + NONCE_SIZE  # 50
ECIES_HKDF_INFO = b"0g-storage-client/ecies/v1/aes-256"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

KEY_CHECK_MAGIC = b"zgos/enc/v1"  # tag prefix; KV streams use sha256("STREAM") instead
KEY_CHECK_DOMAIN = b"zgos key check"
KEY_CHECK_SIZE = 16  # bytes of the sha256 kept
KEY_CHECK_TAG_SIZE = len(KEY_CHECK_MAGIC) + KEY_CHECK_SIZE


class InvalidEncryption(ZgError):
    """Bytes that are not an encrypted file of a known version, or malformed key material."""


class WrongKey(ZgError):
    """The key does not match the key check the uploader recorded: decryption would be garbage."""


@dataclass(frozen=True)
class EncryptionHeader:
    """The header in front of the ciphertext: version, nonce and (v2) the ephemeral public key."""

    version: int
    nonce: bytes
    ephemeral_pub: bytes = b""  # 33 bytes for v2, empty for v1

    def __post_init__(self) -> None:
        if self.version not in (SYMMETRIC_VERSION, ECIES_VERSION):
            raise InvalidEncryption(f"unsupported encryption version {self.version}")
        if len(self.nonce) != NONCE_SIZE:
            raise InvalidEncryption(f"nonce must be {NONCE_SIZE} bytes, got {len(self.nonce)}")
        wanted = EPHEMERAL_PUBKEY_SIZE if self.version == ECIES_VERSION else 0
        if len(self.ephemeral_pub) != wanted:
            raise InvalidEncryption(f"a v{self.version} header carries a {wanted}-byte ephemeral key, "
                                    f"got {len(self.ephemeral_pub)}")

    @property
    def size(self) -> int:
        """Bytes on the wire: 17 (v1) or 50 (v2)."""
        return ECIES_HEADER_SIZE if self.version == ECIES_VERSION else SYMMETRIC_HEADER_SIZE

    def encode(self) -> bytes:
        return bytes([self.version]) + self.ephemeral_pub + self.nonce

    @classmethod
    def decode(cls, data: bytes) -> EncryptionHeader:
        """The header at the start of ``data`` (which may go on); ``InvalidEncryption`` if
        ``data`` is empty, of an unknown version or shorter than that version's header."""
        if not data:
            raise InvalidEncryption("no bytes to read an encryption header from")
        version = data[0]
        if version == SYMMETRIC_VERSION:
            size, pub_size = SYMMETRIC_HEADER_SIZE, 0
        elif version == ECIES_VERSION:
            size, pub_size = ECIES_HEADER_SIZE, EPHEMERAL_PUBKEY_SIZE
        else:
            raise InvalidEncryption(f"not an encrypted file: unknown encryption version byte 0x{version:02x}",
                                    "0G's format starts with 0x01 (v1, symmetric) or 0x02 (v2, ECIES)")
        if len(data) < size:
            raise InvalidEncryption(f"{len(data)} bytes are too short for a v{version} encryption header ({size} bytes)")
        return cls(version, bytes(data[1 + pub_size:size]), bytes(data[1:1 + pub_size]))


# --- the cipher ------------------------------------------------------------------------------


def validate_aes_key(key: bytes) -> None:
    """Raises ``InvalidEncryption`` unless ``key`` is 32 bytes."""
    if len(key) != AES_KEY_SIZE:
        raise InvalidEncryption(f"an encryption key is {AES_KEY_SIZE} bytes, got {len(key)}")


def compute_counter_block(nonce: bytes, offset: int) -> bytes:
    """The CTR counter block of plaintext byte ``offset``: nonce + offset // 16, big-endian,
    modulo 2^128 (``addToCounter`` in 0G's clients)."""
    value = (int.from_bytes(nonce, "big") + offset // AES_BLOCK_SIZE) % COUNTER_MODULUS
    return value.to_bytes(NONCE_SIZE, "big")


def crypt_at(key: bytes, nonce: bytes, offset: int, data: bytes) -> bytes:
    """``data`` XOR the AES-256-CTR keystream from plaintext byte ``offset`` on (0G's
    ``CryptAt``): encryption and decryption are the same operation, and any split of a stream
    into ranges gives the same bytes as the whole."""
    validate_aes_key(key)
    if len(nonce) != NONCE_SIZE or offset < 0:
        raise InvalidEncryption(f"crypt_at needs a {NONCE_SIZE}-byte nonce and an offset >= 0")
    cipher = Cipher(algorithms.AES(key), modes.CTR(compute_counter_block(nonce, offset))).encryptor()
    skip = offset % AES_BLOCK_SIZE
    if skip:
        cipher.update(bytes(skip))
    return cipher.update(data) + cipher.finalize()


def encrypt_bytes(key: bytes, header: EncryptionHeader, plaintext: bytes) -> bytes:
    """The encrypted form of ``plaintext``: header || CTR(plaintext) from offset 0."""
    return header.encode() + crypt_at(key, header.nonce, 0, plaintext)


def decrypt_bytes(key: bytes, data: bytes) -> bytes:
    """The plaintext of a whole encrypted ``data`` (0G's ``DecryptFile``); no key check."""
    header = EncryptionHeader.decode(data)
    return crypt_at(key, header.nonce, 0, data[header.size:])


# --- secp256k1 keys and ECIES (v2) -----------------------------------------------------------


def _hex_or_bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    text = value.strip().removeprefix("0x").removeprefix("0X")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidEncryption(f"{what} is not hex: {value[:20]!r}...") from None


def _public_point(encoded: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), encoded)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidEncryption("not a point on secp256k1", "a public key is 33, 65 or 64 bytes of hex") from None


def normalize_pubkey(value: bytes | str) -> bytes:
    """The 33-byte compressed form of a secp256k1 public key given as 33 bytes (compressed),
    65 (0x04 || x || y), 64 (x || y) or hex of any of them (0G's ``normalizePubKey``)."""
    raw = _hex_or_bytes(value, "the public key")
    if len(raw) == RAW_PUBKEY_SIZE:
        raw = b"\x04" + raw
    if len(raw) not in (EPHEMERAL_PUBKEY_SIZE, UNCOMPRESSED_PUBKEY_SIZE):
        raise InvalidEncryption(f"a public key is 33, 65 or 64 bytes, got {len(raw)}")
    return _public_point(raw).public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def _private_scalar(secret: bytes) -> ec.EllipticCurvePrivateKey:
    if len(secret) != PRIVATE_KEY_SIZE or not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
        raise InvalidEncryption("not a secp256k1 private key", "expected 32 bytes, a scalar in [1, n)")
    return ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256K1())


def compute_pubkey(secret: bytes) -> bytes:
    """The 33-byte compressed public key of the secp256k1 private key ``secret``."""
    return _private_scalar(secret).public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def compute_ecies_key(secret: bytes, pubkey: bytes) -> bytes:
    """The v2 AES key shared by ``secret`` and ``pubkey``: HKDF-SHA256(ikm = x coordinate of
    secret * pubkey (32 bytes), salt empty, info ``ECIES_HKDF_INFO``, 32 bytes) (``ecies.go``)."""
    shared_x = _private_scalar(secret).exchange(ec.ECDH(), _public_point(normalize_pubkey(pubkey)))
    return HKDF(algorithm=hashes.SHA256(), length=AES_KEY_SIZE, salt=None, info=ECIES_HKDF_INFO).derive(shared_x)


def new_symmetric_header(nonce: bytes) -> EncryptionHeader:
    """A v1 header with the (random) ``nonce``."""
    return EncryptionHeader(SYMMETRIC_VERSION, nonce)


def new_ecies_header(recipient: bytes | str, ephemeral_secret: bytes, nonce: bytes) -> tuple[EncryptionHeader, bytes]:
    """A v2 header to ``recipient``'s public key and the AES key to encrypt with, from a
    (random) ephemeral secret and nonce (``DeriveECIESEncryptKey``)."""
    key = compute_ecies_key(ephemeral_secret, normalize_pubkey(recipient))
    return EncryptionHeader(ECIES_VERSION, nonce, compute_pubkey(ephemeral_secret)), key


def compute_ecies_decrypt_key(recipient_secret: bytes, header: EncryptionHeader) -> bytes:
    """The AES key of a v2 ``header`` for the recipient's private key (``DeriveECIESDecryptKey``)."""
    if header.version != ECIES_VERSION:
        raise InvalidEncryption(f"a v{header.version} file has no ephemeral key: it needs a symmetric key")
    return compute_ecies_key(recipient_secret, header.ephemeral_pub)


# --- zgos's key check (in the submission tags; 0G's clients ignore it) -----------------------


def compute_key_check(key: bytes, nonce: bytes) -> bytes:
    """First 16 bytes of sha256(KEY_CHECK_DOMAIN || key || nonce): equal keys give equal
    checks; the check reveals nothing usable about a random 256-bit key."""
    validate_aes_key(key)
    return hashlib.sha256(KEY_CHECK_DOMAIN + key + nonce).digest()[:KEY_CHECK_SIZE]


def encode_key_check_tags(key: bytes, nonce: bytes) -> bytes:
    """The submission tags that record the key check: KEY_CHECK_MAGIC || check."""
    return KEY_CHECK_MAGIC + compute_key_check(key, nonce)


def decode_key_check_tags(tags: bytes) -> bytes | None:
    """The key check in a submission's ``tags``, or None if they hold none (a plain file, a KV
    transaction, or a file encrypted by 0G's clients)."""
    if len(tags) != KEY_CHECK_TAG_SIZE or not tags.startswith(KEY_CHECK_MAGIC):
        return None
    return tags[len(KEY_CHECK_MAGIC):]


def validate_key_check(key: bytes, header: EncryptionHeader, tags: bytes) -> bool:
    """Raises ``WrongKey`` if ``tags`` hold a key check that ``key`` fails; returns whether a
    check was made (False: no check recorded, the key cannot be verified before decrypting)."""
    recorded = decode_key_check_tags(tags)
    if recorded is None:
        return False
    if compute_key_check(key, header.nonce) != recorded:
        if header.version == SYMMETRIC_VERSION:
            raise WrongKey("wrong encryption key: it does not match the file's key check on chain",
                           "pass the key the file was uploaded with")
        raise WrongKey("wrong recipient: this account's key does not match the file's key check on chain",
                       "decrypt with the account the file was encrypted to (--account)")
    return True
