"""What auditors hold against an operator, as clients use it to choose nodes (issue 17 §3).

The record lives in ``AlignmentRegistry``; it is read here, in the chain layer (as
``NodeRegistry`` is), so that the networks' clients take a plain ``Standings`` callable and none
of them depends on the alignment network: a slashed operator is skipped, a negative score goes
after the rest. ``zgos.alignment.contracts`` reads the same pages for its richer records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment

SUBJECTS_PAGE = 100  # AlignmentRegistry.getSubjectsPage's cap
MAX_SUBJECTS_READ = 10_000
REGISTRY = "AlignmentRegistry"


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


SubjectRow = tuple[str, int, int, int, int, int]  # operator, kind, score, faults, slashes, slashed (neuron)


def read_subject_rows(chain: Chain, registry: Any) -> list[SubjectRow]:
    """Every subject ever bonded or reported on in ``registry`` (an ``AlignmentRegistry``
    contract), page by page, at most ``MAX_SUBJECTS_READ``."""
    rows: list[SubjectRow] = []
    while len(rows) < MAX_SUBJECTS_READ:
        page, records, total = chain.call(registry.functions.getSubjectsPage(len(rows), SUBJECTS_PAGE))
        for (operator, kind), (score, faults, slashes, slashed) in zip(page, records, strict=True):
            rows.append((str(operator), int(kind), int(score), int(faults), int(slashes), int(slashed)))
        if not page or len(rows) >= int(total):
            break
    return rows


def registry_standings(chain: Chain, deployment: Deployment, kind: int) -> Standings | None:
    """The standings of operators of ``kind`` (a ``NodeRegistry`` kind), read afresh on each
    call; None when the deployment has no ``AlignmentRegistry``."""
    if REGISTRY not in deployment.addresses:
        return None
    registry = chain.contract(REGISTRY, deployment.address(REGISTRY))

    def read() -> dict[str, Standing]:
        return {operator.lower(): Standing(score, slashes > 0)
                for operator, row_kind, score, _, slashes, _ in read_subject_rows(chain, registry) if row_kind == kind}

    return read
