"""The alignment network's devnet service: ``auditor`` (status API on 9090; on another chain
port, chain port + ``AUDITOR_DELTA``), as the ``auditor`` devnet account, started once the networks it
audits (storage, DA, compute) are up.

Before it starts, every devnet operator that runs a node bonds the registry's minimum for it
(idempotent): the storage nodes, the DA signers and the inference providers, so a fault on the
devnet is slashable out of the box. The devnet auditor waits one interval before its first round
and probes at a devnet pace (``DEVNET_AUDIT_INTERVAL_S``).
"""

from __future__ import annotations

import logging

from zgos.chain.networks import DEVNET_ROLES
from zgos.runtime.netutil import http_ok
from zgos.runtime.ports import AUDITOR_DELTA, AUDITOR_PORT
from zgos.runtime.service import DevnetContext, DevnetOptions, Service, ServiceGroup

log = logging.getLogger(__name__)

DEVNET_AUDIT_INTERVAL_S = 60
DEVNET_CHALLENGE_EVERY = 10  # rounds: an on-chain storage challenge every ten minutes
STORAGE_ROLES = 8  # storage-i uses the storage role + i (zgos.chain.networks)
DA_SIGNER_ROLES = 4
COMPUTE_ROLES = ("provider", "finetune-provider")


def bond_devnet_operators(ctx: DevnetContext) -> None:
    """Bond the minimum for every devnet account that runs a node and has no bond yet."""
    from zgos.alignment.contracts import AlignmentContracts
    from zgos.alignment.spec.bonds import BondKind
    from zgos.chain.accounts import devnet_account
    from zgos.chain.client import Chain
    from zgos.chain.deploy import load_deployment
    from zgos.core.errors import TxReverted

    chain = Chain(ctx.options.rpc_url)
    contracts = AlignmentContracts.from_deployment(chain, load_deployment(ctx.data_dir.deployment, chain.chain_id))
    minimum = contracts.min_bond()
    operators = [(DEVNET_ROLES["storage"] + i, BondKind.STORAGE) for i in range(STORAGE_ROLES)]
    operators += [(DEVNET_ROLES["da-signer"] + i, BondKind.DA_SIGNER) for i in range(DA_SIGNER_ROLES)]
    operators += [(DEVNET_ROLES[role], BondKind.COMPUTE) for role in COMPUTE_ROLES]
    for index, kind in operators:
        account = devnet_account(index)
        if contracts.bond_of(account.address, kind).amount >= minimum:
            continue
        try:
            contracts.bond(account, kind, minimum)
        except TxReverted as exc:  # it runs no such node on this devnet (NotRegistered)
            log.debug("no %s bond for %s: %s", kind.name.lower(), account.address, exc)


def auditor_service(options: DevnetOptions) -> Service:
    port = options.port(AUDITOR_PORT, AUDITOR_DELTA)
    url = options.url(port)
    return Service(
        name="auditor", url=url,
        argv=lambda ctx: ctx.zg("auditor", "run", "--host", options.host, "--port", str(port), "--interval", str(DEVNET_AUDIT_INTERVAL_S),
                                "--challenge-every", str(DEVNET_CHALLENGE_EVERY),
                                "--account", f"devnet:{DEVNET_ROLES['auditor']}"),
        ready=lambda ctx: http_ok(url + "/health"), prepare=bond_devnet_operators)


# ``bond_devnet_operators`` bonds only operators registered on chain (a DA signer registers as
# it starts), and the auditor audits the storage nodes, the DA signers and the providers
ALIGNMENT_GROUP = ServiceGroup("alignment", lambda options: [auditor_service(options)],
                               needs=("storage", "da", "compute"))
