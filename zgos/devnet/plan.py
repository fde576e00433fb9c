"""The whole zgos contract set in deployment order: the chain's node registry, then each
network's part, kept beside its contract wrappers. ``zg devnet up`` and ``zg chain deploy``
deploy it (``zgos.chain.deploy.deploy_all``).

It lives here because the devnet is the one package that assembles every network; the engine
under ``chain/`` knows none. The order is the one the contracts always had, so a fresh chain
gives every contract the same address as before.
"""

from __future__ import annotations

from pathlib import Path

from zgos.alignment import contracts as alignment
from zgos.chain import registry
from zgos.chain.accounts import devnet_role
from zgos.chain.client import Chain
from zgos.chain.deploy import ContractPlan, deploy_all
from zgos.compute import contracts as compute
from zgos.compute.finetune import contracts as finetune
from zgos.da import contracts as da
from zgos.inft import contracts as inft
from zgos.storage import contracts as storage

PLAN: list[ContractPlan] = [
    *registry.DEPLOY_PLAN,
    *storage.DEPLOY_PLAN,
    *compute.DEPLOY_PLAN,
    *da.DEPLOY_PLAN,
    *finetune.DEPLOY_PLAN,
    *inft.DEPLOY_PLAN,
    *alignment.DEPLOY_PLAN,
]


def deploy_contracts(chain: Chain, deployment: Path) -> None:
    """Deploy ``PLAN`` from the devnet deployer account, recording it in ``deployment``
    (idempotent: only what is missing or changed is deployed)."""
    deploy_all(chain, devnet_role("deployer"), deployment, PLAN)
