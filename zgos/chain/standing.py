"""What auditors hold against an operator, as clients use it to choose nodes (issue 17 §3).

The record lives in ``AlignmentRegistry`` (read by ``zgos.alignment.standings``); the networks'
clients take it as a plain ``Standings`` callable, so none of them depends on the alignment
network: a slashed operator is skipped, a negative score goes after the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Standing:
    score: int = 0
    slashed: bool = False


Standings = Callable[[], dict[str, Standing]]  # by lower-case operator address

NEUTRAL = Standing()


def rank_by_standing(operators: list[str], standings: dict[str, Standing]) -> list[str]:
    """``operators`` without the slashed ones, those with a negative score last (stable)."""
    kept = [o for o in operators if not standings.get(o.lower(), NEUTRAL).slashed]
    return sorted(kept, key=lambda o: standings.get(o.lower(), NEUTRAL).score < 0)
