"""Encrypted uploads and decrypting downloads, in 0G's format (``zgos.storage.spec.encryption``).

**Upload.** The file is encrypted as a stream (``STAGE_CHUNK_BYTES`` at a time, so memory stays
bounded) into a staged ciphertext file (header || CTR(plaintext)) in a staging directory, and
that file goes through the one upload pipeline with the key check in its submission tags. The
staged file is named after the plaintext (path, size, mtime) and the key (or recipient), and is
kept until the upload succeeds: running the same upload again after any failure reuses it, so
the data root is the same and the upload resumes. The cost is one extra write of the file.

**Download.** The tags are read from the file's first ``Submit`` event on chain (found by its
node digest; a storage node cannot forge them), the first verified segment gives the header,
the key is derived and compared with the key check, and only then is plaintext written:
segment by segment, each already proof-checked, into a temporary file beside OUT that is
renamed into place only when all of it is written and removed on any error. A file without a
key check (encrypted by 0G's clients) decrypts unchecked: a wrong key then gives garbage, as
with 0G's clients.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from zgos.storage.client import StorageClient, UploadResult
from zgos.storage.contracts import decode_submit_event
from zgos.storage.download import VerifiedFile, atomic_output
from zgos.storage.locations import FileLocation
from zgos.storage.nodeclient import StorageError
from zgos.storage.spec.encryption import (
    NONCE_SIZE,
    PRIVATE_KEY_SIZE,
    SYMMETRIC_VERSION,
    EncryptionHeader,
    InvalidEncryption,
    compute_ecies_decrypt_key,
    compute_pubkey,
    crypt_at,
    encode_key_check_tags,
    new_ecies_header,
    new_symmetric_header,
    normalize_pubkey,
    validate_aes_key,
    validate_key_check,
)
from zgos.storage.spec.flow import Submission, SubmissionNode, compute_submission_digest
from zgos.storage.upload import Progress

STAGE_CHUNK_BYTES = 4 * 1024 * 1024  # plaintext encrypted per read while staging
STAGED_SUFFIX = ".enc"
TAGS_SUFFIX = ".tags"


@dataclass(frozen=True)
class Sealing:
    """What an upload encrypts with: the AES key and the header written in front."""

    key: bytes
    header: EncryptionHeader

    @property
    def tags(self) -> bytes:
        return encode_key_check_tags(self.key, self.header.nonce)


@dataclass(frozen=True)
class Recipient:
    """Who an upload is encrypted for: a symmetric key (v1) or a secp256k1 public key (v2)."""

    symmetric_key: bytes | None = None
    pubkey: bytes | None = None

    def __post_init__(self) -> None:
        if (self.symmetric_key is None) == (self.pubkey is None):
            raise InvalidEncryption("encrypt with either a symmetric key (v1) or a recipient public key (v2)")
        if self.symmetric_key is not None:
            validate_aes_key(self.symmetric_key)

    @property
    def key_id(self) -> bytes:
        """Names the staged file; a hash, so the key itself is never in a file name."""
        if self.pubkey is not None:
            return normalize_pubkey(self.pubkey)
        assert self.symmetric_key is not None
        return hashlib.sha256(b"zgos staged key id" + self.symmetric_key).digest()

    def seal(self) -> Sealing:
        """A fresh random nonce (and, for v2, ephemeral key) for one encryption."""
        nonce = secrets.token_bytes(NONCE_SIZE)
        if self.symmetric_key is not None:
            return Sealing(self.symmetric_key, new_symmetric_header(nonce))
        assert self.pubkey is not None
        header, key = new_ecies_header(self.pubkey, new_ephemeral_secret(), nonce)
        return Sealing(key, header)


def new_ephemeral_secret() -> bytes:
    """A random secp256k1 private key (a draw of 0 or >= n, probability ~2^-128, is redrawn)."""
    while True:
        secret = secrets.token_bytes(PRIVATE_KEY_SIZE)
        try:
            compute_pubkey(secret)
            return secret
        except InvalidEncryption:
            continue


@dataclass(frozen=True)
class Keys:
    """What a download may decrypt with: a symmetric key (v1 files), a private key (v2 files),
    given or fetched only when a v2 file needs it (no keystore prompt for a v1 file)."""

    symmetric_key: bytes | None = None
    private_key: bytes | Callable[[], bytes] | None = None

    def key_for(self, header: EncryptionHeader) -> bytes:
        """The AES key for ``header``; ``InvalidEncryption`` naming what is missing."""
        if header.version == SYMMETRIC_VERSION:
            if self.symmetric_key is None:
                raise InvalidEncryption("this file is encrypted with a symmetric key (v1)",
                                        "pass its key: set ZGOS_ENCRYPTION_KEY (or --encryption-key HEX)")
            validate_aes_key(self.symmetric_key)
            return self.symmetric_key
        if self.private_key is None:
            raise InvalidEncryption("this file is encrypted to a wallet key (v2, ECIES)",
                                    "pass --decrypt to use the signing account's key")
        secret = self.private_key() if callable(self.private_key) else self.private_key
        return compute_ecies_decrypt_key(secret, header)


# --- upload ------------------------------------------------------------------------------------


def encrypt_file(source: Path, target: Path, sealing: Sealing) -> None:
    """Write header || CTR(source) to ``target``, ``STAGE_CHUNK_BYTES`` at a time, fsynced."""
    with source.open("rb") as reader, target.open("wb") as writer:
        writer.write(sealing.header.encode())
        offset = 0
        while chunk := reader.read(STAGE_CHUNK_BYTES):
            writer.write(crypt_at(sealing.key, sealing.header.nonce, offset, chunk))
            offset += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())


def stage(path: Path, recipient: Recipient, staging: Path) -> tuple[Path, bytes]:
    """The staged ciphertext of ``path`` for ``recipient`` and its submission tags: the one a
    previous run left if there is one (so a rerun resumes), else a new one."""
    stat = path.stat()
    name = hashlib.sha256(b"zgos staged upload\0%s\0%d\0%d\0%s" % (
        str(path.resolve()).encode(), stat.st_size, stat.st_mtime_ns, recipient.key_id)).hexdigest()[:32]
    staged, tags_file = staging / (name + STAGED_SUFFIX), staging / (name + TAGS_SUFFIX)
    if staged.is_file() and tags_file.is_file():
        return staged, tags_file.read_bytes()
    staging.mkdir(parents=True, exist_ok=True)
    sealing = recipient.seal()
    partial = staging / (name + ".part")
    try:
        encrypt_file(path, partial, sealing)
        tags_file.write_bytes(sealing.tags)
        partial.replace(staged)
    finally:
        partial.unlink(missing_ok=True)
    return staged, sealing.tags


def upload_encrypted(client: StorageClient, path: Path, recipient: Recipient, staging: Path, *,
                     fee: int | None = None, replicas: int = 1, progress: Progress | None = None,
                     on_staged: Callable[[Path], None] | None = None) -> UploadResult:
    """Encrypt ``path`` for ``recipient`` and upload the ciphertext with its key check;
    resumable (see the module docstring). The staged files are removed once it succeeded."""
    if not path.is_file():
        raise StorageError(f"no such file: {path}")
    staged, tags = stage(path, recipient, staging)
    if on_staged:
        on_staged(staged)
    result = client.upload(staged, tags=tags, fee=fee, replicas=replicas, progress=progress)
    staged.unlink(missing_ok=True)
    staged.with_suffix(TAGS_SUFFIX).unlink(missing_ok=True)
    return result


# --- download ----------------------------------------------------------------------------------


def submission_tags(client: StorageClient, file: VerifiedFile, locations: list[FileLocation]) -> bytes | None:
    """The tags of the first ``Submit`` of ``file`` on chain (None without a chain). The event
    is looked up by the node digest the storage nodes report, and kept only if its data root and
    length are the file's, so a node cannot substitute tags."""
    flow = client.flow
    if flow is None:
        return None
    head = flow.chain.block_number()
    tried: set[bytes] = set()
    for location in locations:
        nodes = tuple(SubmissionNode(bytes.fromhex(str(root).removeprefix("0x")), int(height) - 1)
                      for height, root in location.info["tx"]["merkleNodes"])
        digest = compute_submission_digest(Submission(file.size, b"", nodes))
        if digest in tried:
            continue
        tried.add(digest)
        events = flow.chain.get_logs(flow.contract, "Submit", 0, head, {"identity": digest})
        entries = [e for e in map(decode_submit_event, events) if e.data_root == file.root and e.size == file.size]
        if entries:
            return min(entries, key=lambda e: e.seq).submission.tags
    raise StorageError(f"cannot find the Submit event of 0x{file.root.hex()} on chain to read its key check",
                       "the storage nodes report node lists the chain does not know; try other nodes")


@dataclass(frozen=True)
class DecryptedFile:
    """A decrypting download: the stored file, its header, the plaintext size and whether the
    key was checked against a key check recorded on chain."""

    stored: VerifiedFile
    header: EncryptionHeader
    size: int
    checked: bool


def download_decrypted(client: StorageClient, root: bytes, out: Path, keys: Keys,
                       progress: Progress | None = None) -> DecryptedFile:
    """Download ``root``, verify every segment, refuse a wrong key before writing anything and
    write the plaintext to ``out`` atomically (nothing is left at ``out`` on any error)."""
    stored, locations = client.verified_locations(root)
    tags = submission_tags(client, stored, locations)
    stored, chunks = client.stream(root)
    with closing(chunks):
        first = next(chunks, b"")
        header = EncryptionHeader.decode(first)
        key = keys.key_for(header)
        checked = tags is not None and validate_key_check(key, header, tags)
        size = stored.size - header.size
        with atomic_output(out, size) as handle:
            offset = _write_plain(handle, key, header, first[header.size:], 0, progress)
            for chunk in chunks:
                offset = _write_plain(handle, key, header, chunk, offset, progress)
    return DecryptedFile(stored, header, size, checked)


def _write_plain(handle: int, key: bytes, header: EncryptionHeader, chunk: bytes, offset: int,
                 progress: Progress | None) -> int:
    os.pwrite(handle, crypt_at(key, header.nonce, offset, chunk), offset)
    if progress:
        progress(len(chunk))
    return offset + len(chunk)
