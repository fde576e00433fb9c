"""When a blob's signatures certify it: the 2/3-of-stake rule.

Rule: the signers whose BLS signatures verified reach the quorum when they hold at least two
thirds of the epoch quorum's total stake, ``signed * 3 >= total * 2`` in integers (exactly 2/3
is enough, as in 0G's ``DAEntrance``: "docs say more than 2/3; code accepts exactly 2/3"), and
hold some stake at all (the contract refuses an empty signer set). The disperser stops asking
signers once it is reached and submits the aggregate certificate only then; ``DAEntrance.
submitCertificate`` checks the same inequality on chain (``THRESHOLD_NUMERATOR`` /
``THRESHOLD_DENOMINATOR``), so a certificate the disperser sends is never refused for its stake.

Why 2/3: any 64 of a row's 128 cells recover it, and signers holding 2/3 of the stake hold more
than half of the columns (``zgos.da.spec.assignment``), so a certified blob stays recoverable
while the signers holding less than 1/3 of the stake withhold their cells.

Reference: ../shared/reference/da.md, §1.2 steps 8-9 and §3.5 "Threshold".
"""

from __future__ import annotations

THRESHOLD_NUMERATOR = 2  # = DAEntrance.THRESHOLD_NUMERATOR
THRESHOLD_DENOMINATOR = 3  # = DAEntrance.THRESHOLD_DENOMINATOR


def is_quorum_reached(signed_stake_wei: int, total_stake_wei: int) -> bool:
    """True if signers holding ``signed_stake_wei`` of the quorum's ``total_stake_wei`` may
    certify a blob: ``signed * 3 >= total * 2`` and ``signed > 0``."""
    if signed_stake_wei < 0 or total_stake_wei < 0 or signed_stake_wei > total_stake_wei:
        raise ValueError(f"signed stake {signed_stake_wei} must lie within the total stake {total_stake_wei}")
    return signed_stake_wei > 0 and signed_stake_wei * THRESHOLD_DENOMINATOR >= total_stake_wei * THRESHOLD_NUMERATOR


def stake_share_percent(signed_stake_wei: int, total_stake_wei: int) -> float:
    """The signed share of the stake in percent, for messages (0 for an empty quorum)."""
    return 100 * signed_stake_wei / total_stake_wei if total_stake_wei else 0.0
