"""Storage challenges: proving on chain that a node still holds a file it took custody of.

Reference: issue 17, and for contrast storage.md §2.4 and §3 (0G's PoRA rewards whoever holds a
random piece; it never punishes a node that dropped data). A challenge here is a proof of data
possession in the manner of Filecoin's PDP, checked by ``AlignmentRegistry``:

1. **Custody.** A storage node signs, as EIP-712 ``Custody`` under the domain
   ``("zgos AlignmentRegistry", "1", chainId, registry)``, that it holds its shard
   ``(shardId, numShard)`` of the file submitted as ``txSeq``, whose data is flow sectors
   ``[startSector, startSector + dataSectors)`` in a flow of ``flowLength`` sectors after that
   submission, until block ``validUntil``. Only the node's own statement makes it challengeable
   for a file: a root submitted to ``Flow`` whose data was never uploaded binds nobody.
2. **Opening.** An auditor presents the custody and pays the challenge fee at block ``b``; the
   contract records the flow root after ``txSeq`` (``Flow.getFlowRootByTxSeq``) and the seed
   block ``b + SEED_DELAY_BLOCKS``, whose hash nobody knows at opening.
3. **The sector.** Once the seed block is mined its hash ``seed`` picks the sector
   (``compute_challenge_sector``): ``r = keccak(seed ‖ id)`` as a uint256 picks one of the
   file's data segments in the node's shard (``r mod count``), then a data sector inside it
   (``(r div count) mod sectors in it``).
4. **The answer.** Until block ``seed block + ANSWER_WINDOW_BLOCKS`` the node sends the sector's
   256 bytes and the ``depth(flowLength)`` siblings of its path to the recorded root
   (``validate_answer``). The window is shorter than the 256 blocks ``BLOCKHASH`` can see, so the
   seed stays readable for as long as an answer is accepted.
5. **Unanswered.** After the window anyone may slash the node (``bonds.STORAGE_SLASH_BPS``); the
   slash and the fee go to the challenger. An answered challenge can never be slashed.

The seed is a block hash: whoever produces the seed block could bias it by withholding blocks,
which on a proof-of-stake chain costs a block reward per try. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from zgos.core.hashing import HASH_BYTES, keccak256
from zgos.core.signatures import (
    EIP712_PREFIX,
    _hash32,
    normalize_address,
    recover_digest,
    sign_digest,
)
from zgos.storage.spec.answer import compute_flow_depth, compute_path_root
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, SECTORS_PER_SEGMENT, ceil_div

SEED_DELAY_BLOCKS = 1  # the seed is the hash of the block after the opening one
ANSWER_WINDOW_BLOCKS = 64  # blocks after the seed block in which an answer is accepted
BLOCKHASH_WINDOW_BLOCKS = 256  # the EVM's BLOCKHASH sees this many past blocks
assert ANSWER_WINDOW_BLOCKS < BLOCKHASH_WINDOW_BLOCKS

DOMAIN_NAME = "zgos AlignmentRegistry"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
CUSTODY_TYPE = (b"Custody(uint256 txSeq,uint256 startSector,uint256 dataSectors,uint256 flowLength,"
                b"uint32 shardId,uint32 numShard,uint256 validUntil)")
CUSTODY_TYPEHASH = keccak256(CUSTODY_TYPE)
UINT256_MAX = 2**256 - 1


class InvalidCustody(ValueError):
    """A custody statement that no node could answer challenges on."""


class InvalidAnswer(ValueError):
    """An answer the contract refuses; the message says why."""


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
    if min(c.tx_seq, c.start_sector, c.data_sectors, c.flow_length, c.valid_until) < 0 or max(
            c.tx_seq, c.start_sector, c.data_sectors, c.flow_length, c.valid_until) > UINT256_MAX:
        raise InvalidCustody("fields are uint256")
    if c.data_sectors == 0:
        raise InvalidCustody("no data sectors")
    if c.start_sector == 0 or c.start_sector + c.data_sectors > c.flow_length:
        raise InvalidCustody("range outside the flow")
    if not 1 <= c.num_shard < 2**32 or c.num_shard & (c.num_shard - 1) or not 0 <= c.shard_id < c.num_shard:
        raise InvalidCustody("shard")
    if compute_held_segments(c)[1] == 0:
        raise InvalidCustody("no data segment in the shard")


def compute_seed_block(opened_at: int) -> int:
    """The block whose hash seeds a challenge opened at block ``opened_at``."""
    return opened_at + SEED_DELAY_BLOCKS


def compute_answer_deadline(seed_block: int) -> int:
    """The last block in which an answer to a challenge with this seed block is accepted."""
    return seed_block + ANSWER_WINDOW_BLOCKS


def is_answerable(seed_block: int, block: int) -> bool:
    """An answer in ``block`` can be checked: the seed exists and the window is open."""
    return seed_block < block <= compute_answer_deadline(seed_block)


def compute_challenge_sector(seed: bytes, challenge_id: int, custody: Custody) -> int:
    """The flow sector challenge ``challenge_id`` asks for, given its seed block's hash
    (``AlignmentRegistry.sectorFor``): a held data segment uniformly, then a data sector in it."""
    validate_custody(custody)
    first_held, count = compute_held_segments(custody)
    r = int.from_bytes(keccak256(_hash32(seed, "seed") + challenge_id.to_bytes(32, "big")), "big")
    segment = first_held + (r % count) * custody.num_shard
    end = custody.start_sector + custody.data_sectors
    lo = max(custody.start_sector, segment * SECTORS_PER_SEGMENT)
    hi = min(end, (segment + 1) * SECTORS_PER_SEGMENT)
    return lo + (r // count) % (hi - lo)


def validate_answer(sector: int, data: bytes, proof: Sequence[bytes], flow_root: bytes, flow_length: int) -> None:
    """Raise ``InvalidAnswer`` unless ``data`` is flow sector ``sector`` under ``flow_root``:
    256 bytes whose path of ``depth(flow_length)`` siblings folds to the root."""
    if len(data) != BYTES_PER_SECTOR:
        raise InvalidAnswer(f"a sector is {BYTES_PER_SECTOR} bytes, got {len(data)}")
    depth = compute_flow_depth(flow_length)
    if len(proof) != depth or any(len(p) != HASH_BYTES for p in proof):
        raise InvalidAnswer(f"the path must hold {depth} hashes, got {len(proof)}")
    root = compute_path_root(keccak256(data), sector, proof)
    if root != flow_root:
        raise InvalidAnswer(f"the path leads to 0x{root.hex()}, not the flow root 0x{flow_root.hex()}")
