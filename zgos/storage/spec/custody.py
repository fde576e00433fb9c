"""Custody: a storage node's signed statement that it holds its shard of one file.

A challenge (``zgos.storage.spec.challenges``, issue 17) may only ask a node about data it
said it holds: a root anyone submitted to ``Flow`` without uploading its data binds nobody. The
node signs, as EIP-712 ``Custody`` under the domain ``("zgos AlignmentRegistry", "1", chainId,
registry)``, that it holds shard ``(shardId, numShard)`` (storage.md §4.5: flow segments ``s``
with ``s % numShard == shardId``) of the file submitted as ``txSeq``, whose data is flow sectors
``[startSector, startSector + dataSectors)`` (§1.5) in a flow of ``flowLength`` sectors after
that submission, until block ``validUntil``. ``AlignmentRegistry.openChallenge`` checks it.
Pure: keys are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from zgos.core.hashing import keccak256
from zgos.core.signatures import (
    EIP712_PREFIX,
    _hash32,
    normalize_address,
    recover_digest,
    sign_digest,
)
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, SECTORS_PER_SEGMENT, ceil_div

UINT256_MAX = 2**256 - 1
MAX_SECTOR_FIELD = 2**64 - 1  # the registry keeps tx seq and sector fields in 64 bits

DOMAIN_NAME = "zgos AlignmentRegistry"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
CUSTODY_TYPE = (b"Custody(uint256 txSeq,uint256 startSector,uint256 dataSectors,uint256 flowLength,"
                b"uint32 shardId,uint32 numShard,uint256 validUntil)")
CUSTODY_TYPEHASH = keccak256(CUSTODY_TYPE)


class InvalidCustody(ValueError):
    """A custody statement that no node could answer challenges on."""


@dataclass(frozen=True)
class RegistryDomain:
    """The EIP-712 domain of one ``AlignmentRegistry`` deployment."""

    chain_id: int
    registry: str

    @cached_property
    def separator(self) -> bytes:
        address = bytes.fromhex(normalize_address(self.registry)[2:])
        return keccak256(keccak256(DOMAIN_TYPE) + keccak256(DOMAIN_NAME.encode()) + keccak256(DOMAIN_VERSION.encode())
                         + self.chain_id.to_bytes(32, "big") + bytes(12) + address)

    def digest(self, struct_hash: bytes) -> bytes:
        return keccak256(EIP712_PREFIX + self.separator + _hash32(struct_hash, "structHash"))


@dataclass(frozen=True)
class Custody:
    """A node's signed statement that it holds its shard of one file (module docstring, 1)."""

    tx_seq: int
    start_sector: int
    data_sectors: int
    flow_length: int
    shard_id: int
    num_shard: int
    valid_until: int

    def struct_hash(self) -> bytes:
        words = (self.tx_seq, self.start_sector, self.data_sectors, self.flow_length, self.shard_id,
                 self.num_shard, self.valid_until)
        return keccak256(CUSTODY_TYPEHASH + b"".join(w.to_bytes(32, "big") for w in words))

    def as_abi(self) -> tuple[int, ...]:
        return (self.tx_seq, self.start_sector, self.data_sectors, self.flow_length, self.shard_id,
                self.num_shard, self.valid_until)


def compute_custody_digest(domain: RegistryDomain, custody: Custody) -> bytes:
    """What the node signs: the EIP-712 digest of ``custody`` under the registry's domain."""
    return domain.digest(custody.struct_hash())


def compute_custody(tx_seq: int, start_sector: int, file_bytes: int, flow_length: int, shard_id: int,
                    num_shard: int, valid_until: int) -> Custody:
    """The custody of a file of ``file_bytes`` bytes placed at ``start_sector`` (its data is
    the first ``ceil(file_bytes / 256)`` sectors); raises ``InvalidCustody`` if unanswerable."""
    custody = Custody(tx_seq, start_sector, ceil_div(file_bytes, BYTES_PER_SECTOR), flow_length, shard_id,
                      num_shard, valid_until)
    validate_custody(custody)
    return custody


def sign_custody(private_key: bytes, domain: RegistryDomain, custody: Custody) -> bytes:
    """The node's 65-byte signature of ``custody``."""
    return sign_digest(private_key, compute_custody_digest(domain, custody))


def recover_custody_signer(domain: RegistryDomain, custody: Custody, signature: bytes) -> str:
    """The address that signed ``custody`` (raises ``InvalidSignature`` on a malformed one)."""
    return recover_digest(compute_custody_digest(domain, custody), signature)


def compute_held_segments(custody: Custody) -> tuple[int, int]:
    """The first flow segment of the file's data in the custody's shard, and how many such
    segments there are (a node holds segments ``s`` with ``s % numShard == shardId``)."""
    first = custody.start_sector // SECTORS_PER_SEGMENT
    last = (custody.start_sector + custody.data_sectors - 1) // SECTORS_PER_SEGMENT
    first_held = first + (custody.shard_id - first) % custody.num_shard
    count = 0 if first_held > last else (last - first_held) // custody.num_shard + 1
    return first_held, count


def validate_custody(custody: Custody) -> None:
    """Raise ``InvalidCustody`` unless the statement names data the node's shard holds."""
    c = custody
    if not 0 <= c.valid_until <= UINT256_MAX:
        raise InvalidCustody("validUntil is a uint256")
    if not all(0 <= f <= MAX_SECTOR_FIELD for f in (c.tx_seq, c.start_sector, c.data_sectors, c.flow_length)):
        raise InvalidCustody("beyond 64 bits")
    if c.data_sectors == 0:
        raise InvalidCustody("no data sectors")
    if c.start_sector == 0 or c.start_sector + c.data_sectors > c.flow_length:
        raise InvalidCustody("range outside the flow")
    if not 1 <= c.num_shard < 2**32 or c.num_shard & (c.num_shard - 1) or not 0 <= c.shard_id < c.num_shard:
        raise InvalidCustody("shard")
    if compute_held_segments(c)[1] == 0:
        raise InvalidCustody("no data segment in the shard")


CUSTODY_FIELDS = ("txSeq", "startSector", "dataSectors", "flowLength", "shardId", "numShard", "validUntil")


def encode_custody(custody: Custody, signature: bytes) -> dict[str, object]:
    """The JSON of a signed custody (``zgs_getCustody``): its fields in camelCase and the signature."""
    return {**dict(zip(CUSTODY_FIELDS, custody.as_abi(), strict=True)), "signature": "0x" + signature.hex()}


def decode_custody(value: object) -> tuple[Custody, bytes]:
    """Parse ``encode_custody`` output; raise ``InvalidCustody`` on anything malformed."""
    if not isinstance(value, dict):
        raise InvalidCustody("a signed custody is a JSON object")
    fields = [value.get(name) for name in CUSTODY_FIELDS]
    if not all(isinstance(f, int) and not isinstance(f, bool) for f in fields):
        raise InvalidCustody(f"a custody has integer fields {', '.join(CUSTODY_FIELDS)}")
    signature = value.get("signature")
    try:
        assert isinstance(signature, str) and signature.startswith("0x")
        raw = bytes.fromhex(signature[2:])
    except (AssertionError, ValueError):
        raise InvalidCustody("signature must be 0x-hex") from None
    custody = Custody(*fields)  # type: ignore[arg-type]
    validate_custody(custody)
    return custody, raw
