"""Operators' standings from ``AlignmentRegistry``, for the clients that choose nodes (the
storage client and indexer, the compute router): a ``Standings`` callable per bond kind."""

from __future__ import annotations

from zgos.alignment.contracts import AlignmentContracts
from zgos.alignment.spec.bonds import BondKind
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.chain.standing import Standing, Standings


def registry_standings(chain: Chain, deployment: Deployment, kind: BondKind) -> Standings | None:
    """Reads every subject of ``kind`` (None when the deployment has no ``AlignmentRegistry``)."""
    if "AlignmentRegistry" not in deployment.addresses:
        return None
    contracts = AlignmentContracts.from_deployment(chain, deployment)

    def read() -> dict[str, Standing]:
        return {r.operator.lower(): Standing(r.score, r.slashes > 0) for r in contracts.records() if r.kind == kind}

    return read
