"""The fine-tuning provider (``zg finetune provider serve``), wired in one place from a typed config.

:func:`run_provider` serves the progress API at once and sets the rest up in the background
(:class:`~zgos.compute.finetune.service.ProviderProcess`, retrying while the chain or storage is
not there yet); :func:`setup_provider` is that set-up:

- the base models offered (Gemma, or the tiny test model) are published in ``ModelRegistry``,
  each file uploaded to storage first (:func:`~zgos.compute.finetune.models.publish_base_models`);
- the provider's ``FineTuningServing`` record is added or updated when it differs from what this
  process offers (:meth:`~zgos.compute.finetune.contracts.FineTuningMarket.ensure_service`);
- the :class:`~zgos.compute.finetune.worker.FineTuningWorker` resumes from its journal (a new
  journal starts at the deployment's block);
- unless told otherwise, a :class:`~zgos.compute.finetune.service.TunedModelHost` serves the
  newest tuned model through its own inference broker.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount

from zgos.chain.accounts import DEVNET_ROLES, PRIVATE_KEY_ENV
from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment
from zgos.compute.contracts import ComputeContracts
from zgos.compute.finetune.contracts import FineTuningMarket, ModelRegistry, ServiceTerms
from zgos.compute.finetune.journal import Journal
from zgos.compute.finetune.models import offered_models, publish_base_models
from zgos.compute.finetune.service import ProviderProcess, TunedModelHost, TunedServingConfig
from zgos.compute.finetune.storage import StorageBlobStore, connect_storage
from zgos.compute.finetune.worker import BaseModel, FineTuningWorker, WorkerConfig
from zgos.compute.spec.billing import Prices
from zgos.runtime.listen import compute_public_url
from zgos.runtime.ports import FINETUNE_PORT, TUNED_ADMIN_PORT, TUNED_BROKER_PORT, TUNED_MODEL_PORT

log = logging.getLogger("zgos.compute.finetune")

Offered = dict[bytes, tuple[str, str, BaseModel]]  # {model id: (name, licence, model)}


class ChainAccess(Protocol):
    """Where the provider finds its chain and deployment, resolved on first use and asked again
    after a failed set-up (the CLI context is one)."""

    def chain(self) -> Chain: ...

    def deployment(self) -> Deployment: ...


@dataclass(frozen=True)
class ProviderConfig:
    """Everything ``zg finetune provider serve`` is told."""

    state_dir: Path  # DATA_DIR/finetune-provider: journal, scratch space, work and logs
    zg_argv: tuple[str, ...]  # runs ``zg`` with this process's global options (the tuned model's broker)
    account: str | None = None  # the provider's ``--account`` (the broker signs with it too)
    host: str = "127.0.0.1"
    port: int = FINETUNE_PORT  # the progress API
    public_url: str | None = None  # registered in FineTuningServing [default http://HOST:PORT]
    price_per_token: int = 10**9
    max_dataset_bytes: int = 1 << 20
    max_tokens: int = 200_000
    tiny: bool = False  # offer the tiny test model instead of Gemma
    serve_tuned: bool = True
    tuned_ports: tuple[int, int, int] = (TUNED_MODEL_PORT, TUNED_BROKER_PORT, TUNED_ADMIN_PORT)  # model, broker, admin
    tuned_prices: tuple[int, int] = (10**9, 2 * 10**9)
    poll_s: float = 1.0
    nodes: tuple[str, ...] = ()  # storage node URLs; none: the nodes announced in the NodeRegistry

    @property
    def url(self) -> str:
        return compute_public_url(self.host, self.port, self.public_url)

    def terms(self, offered: Offered) -> ServiceTerms:
        """The ``FineTuningServing`` record this process offers (URL, price, quotas, models)."""
        return ServiceTerms(self.url, self.price_per_token, self.max_dataset_bytes, self.max_tokens, tuple(offered))

    def journal_path(self, provider: str) -> Path:
        return self.state_dir / f"{provider.lower()}.journal.sqlite"


def child_account_spec(account: str | None) -> str | None:
    """The ``--account`` a child ``zg`` signs with: the provider's own, else none when the key is
    in the environment (the child inherits it), else the devnet's fine-tuning provider."""
    if account:
        return account
    return None if os.environ.get(PRIVATE_KEY_ENV) else f"devnet:{DEVNET_ROLES['finetune-provider']}"


def open_worker(config: ProviderConfig, market: FineTuningMarket, provider: LocalAccount, store: StorageBlobStore,
                offered: Offered, deploy_block: int) -> FineTuningWorker:
    """The worker on its journal, resuming where it stopped (a new journal: at ``deploy_block``)."""
    journal = Journal(config.journal_path(provider.address))
    from_block = journal.get_meta("from_block", -1)
    if from_block < 0:
        from_block = deploy_block
        journal.set_meta("from_block", from_block)
    return FineTuningWorker(market, provider, journal, store, {k: v[2] for k, v in offered.items()},
                            WorkerConfig(config.state_dir / "work", poll_s=config.poll_s, from_block=from_block))


def tuned_model_host(config: ProviderConfig, contracts: ComputeContracts, market: FineTuningMarket,
                     provider: LocalAccount, worker: FineTuningWorker, offered: Offered) -> TunedModelHost:
    """The host serving the newest tuned model through an inference broker of its own."""
    model_port, broker_port, admin_port = config.tuned_ports
    serving = TunedServingConfig(
        model_port=model_port, broker_port=broker_port, admin_port=admin_port, prices=Prices(*config.tuned_prices),
        zg_argv=list(config.zg_argv), account_spec=child_account_spec(config.account), base_name=next(iter(offered.values()))[0],
        host=config.host, public_host=urlsplit(config.url).hostname or config.host,  # what other hosts dial
    )
    return TunedModelHost(serving, contracts, market, provider, config.journal_path(provider.address),
                          config.state_dir / "work", worker.base_models, config.state_dir / "logs")


def setup_provider(config: ProviderConfig, provider: LocalAccount,
                   access: ChainAccess) -> tuple[FineTuningWorker, TunedModelHost | None, StorageBlobStore]:
    """Publish the base models, register the service, open the worker and the tuned-model host
    (a ``ZgError``, e.g. no chain or storage yet, makes ``ProviderProcess`` try again)."""
    chain = access.chain()
    market = FineTuningMarket(chain, access.deployment().address("FineTuningServing"))
    registry = ModelRegistry(chain, access.deployment().address("ModelRegistry"))
    offered = offered_models(config.tiny)
    client = connect_storage(access.chain(), access.deployment(), config.nodes, provider)
    store = StorageBlobStore(client, config.state_dir / "scratch")
    publish_base_models(offered, registry, store, provider)  # uploads each model file first
    market.ensure_service(provider, config.terms(offered))
    worker = open_worker(config, market, provider, store, offered, access.deployment().deploy_block)
    tuned_host = None
    if config.serve_tuned and not config.tiny:
        contracts = ComputeContracts.from_deployment(chain, access.deployment())
        tuned_host = tuned_model_host(config, contracts, market, provider, worker, offered)
    log.info("fine-tuning provider %s on %s offering %s", provider.address, config.url,
             ", ".join(f"{v[0]} (0x{k.hex()[:12]}…)" for k, v in offered.items()))
    return worker, tuned_host, store


def run_provider(config: ProviderConfig, provider: LocalAccount, access: ChainAccess) -> None:
    """Run the provider (worker, progress API, tuned model serving) until SIGINT/SIGTERM."""
    journal_path = config.journal_path(provider.address)
    Journal(journal_path).close()  # created (owner-only) before the API reads it
    setup = partial(setup_provider, config, provider, access)
    ProviderProcess(setup, journal_path, provider.address).run(config.host, config.port)
