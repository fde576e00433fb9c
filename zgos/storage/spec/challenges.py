"""Storage challenges: proving on chain that a node still holds a file it took custody of.

Reference: issue 17, and for contrast storage.md §2.4 and §3 (0G's PoRA rewards whoever holds a
random piece; it never punishes a node that dropped data). A challenge here is a proof of data
possession in the manner of Filecoin's PDP, checked by ``AlignmentRegistry``:

1. **Custody** (``zgos.storage.spec.custody``). A storage node signs, as EIP-712 ``Custody`` under the domain
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

from zgos.core.hashing import HASH_BYTES, keccak256
from zgos.core.signatures import _hash32
from zgos.storage.spec.answer import compute_flow_depth, compute_path_root
from zgos.storage.spec.custody import (  # noqa: F401 (re-exported: a challenge is about a custody)
    Custody,
    InvalidCustody,
    RegistryDomain,
    compute_custody,
    compute_custody_digest,
    compute_held_segments,
    recover_custody_signer,
    sign_custody,
    validate_custody,
)
from zgos.storage.spec.merkle import BYTES_PER_SECTOR, SECTORS_PER_SEGMENT

SEED_DELAY_BLOCKS = 1  # the seed is the hash of the block after the opening one
ANSWER_WINDOW_BLOCKS = 64  # blocks after the seed block in which an answer is accepted
BLOCKHASH_WINDOW_BLOCKS = 256  # the EVM's BLOCKHASH sees this many past blocks
assert ANSWER_WINDOW_BLOCKS < BLOCKHASH_WINDOW_BLOCKS


class InvalidAnswer(ValueError):
    """An answer the contract refuses; the message says why."""


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
