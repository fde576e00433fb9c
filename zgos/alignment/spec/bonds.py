"""Bonds, auditor stakes and slashing (``AlignmentRegistry``, issue 17).

An operator bonds per kind of node it runs, as the account that registered it: a storage node
announced in ``NodeRegistry``, a DA signer registered in ``DASigners``, an inference service in
``InferenceServing`` (the kind numbers are ``NodeRegistry``'s). A bond is slashable until it is withdrawn: unbonding takes
``UNBOND_DELAY_BLOCKS`` and waits for every challenge still open, and no challenge may be opened
from the unlock block on, so a withdrawal is delayed at most ``UNBOND_DELAY_BLOCKS`` plus one
answer window. Each proven fault takes a fixed share of what is left of the bond (basis points),
so repeated faults drain it geometrically and a slash never exceeds the bond.

Auditors register with a stake of at least the deployment's minimum and leave with the same
delay. Pure: amounts in neuron (wei), heights in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from zgos.storage.spec.challenges import ANSWER_WINDOW_BLOCKS, SEED_DELAY_BLOCKS

BPS = 10_000  # basis points in one whole
UNBOND_DELAY_BLOCKS = 1024  # blocks between asking to unbond and withdrawing
STORAGE_SLASH_BPS = 1_000  # 10 % of the storage bond per unanswered challenge
COMPUTE_SLASH_BPS = 1_000  # 10 % of the compute bond per proven response

assert UNBOND_DELAY_BLOCKS > SEED_DELAY_BLOCKS + ANSWER_WINDOW_BLOCKS

# Devnet amounts (a real network sets its own at deployment).
DEVNET_MIN_BOND = 10**18  # 1 0G
DEVNET_MIN_AUDITOR_STAKE = 10**18  # 1 0G
DEVNET_CHALLENGE_FEE = 10**15  # 0.001 0G: paid to a node that answers, back to the challenger if not


class BondKind(IntEnum):
    """What a bond backs; the values are ``NodeRegistry``'s kinds."""

    STORAGE = 0
    DA_SIGNER = 2
    COMPUTE = 3


class InvalidBondKind(ValueError):
    """Not a kind of node that posts a bond."""


def get_bond_kind(name: str) -> BondKind:
    """The kind named ``storage``, ``da-signer`` or ``compute``; raises ``InvalidBondKind``."""
    try:
        return BondKind[name.strip().upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(k.name.lower().replace("_", "-") for k in BondKind)
        raise InvalidBondKind(f"unknown bond kind {name!r} (one of: {choices})") from None


@dataclass(frozen=True)
class Bond:
    amount: int
    unlock_block: int  # 0: bonded; else withdrawable from this block
    open_challenges: int


def compute_slash(amount: int, bps: int) -> int:
    """The part of a bond of ``amount`` neuron one fault takes: ``amount * bps // BPS``."""
    if amount < 0 or not 0 <= bps <= BPS:
        raise ValueError("a bond is >= 0 and a slash share in 0..BPS")
    return amount * bps // BPS


def compute_unlock_block(requested_at: int) -> int:
    """The first block a bond (or stake) asked back at block ``requested_at`` can be withdrawn."""
    return requested_at + UNBOND_DELAY_BLOCKS


def is_withdrawable(bond: Bond, block: int) -> bool:
    """Unbonding was asked, its delay is over and no challenge against it is open."""
    return bond.unlock_block != 0 and block >= bond.unlock_block and bond.open_challenges == 0


def is_challengeable(bond: Bond, block: int) -> bool:
    """A storage bond can be challenged while it stands and until its unlock block."""
    return bond.amount > 0 and (bond.unlock_block == 0 or block < bond.unlock_block)
