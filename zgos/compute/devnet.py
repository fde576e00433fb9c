"""The compute network's devnet services: the model server and one registered provider.

``model`` (llama.cpp serving Gemma 3 270M, port 8081) and ``provider-0`` (the broker, port
3080, admin 3081 on localhost) run as the devnet's ``provider`` account. Before the broker
starts, the Gemma GGUF is uploaded to the devnet's storage and registered in ``ModelRegistry``
(id = its storage root; skipped once registered), its service is registered (or updated) on
chain naming that id, and the demo user (``user`` role) gets a funded sub-account that
acknowledges the provider's signer, so ``zg compute chat "hello"`` and ``zg compute serve``
work right after ``zg devnet up``, and ``zg provenance show`` walks an answer back to the model
file on ``Flow`` and its uploader. (The fine-tuning provider offers the same file, so it finds
it registered.) Uploading the 253 MB file costs a devnet ~7 s once.

A devnet on another chain port (tests, a second devnet) puts these services right above it
(chain port + 1, + 2, + 3; ``zgos.runtime.ports.service_port``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zgos.chain.networks import DEVNET_ROLES
from zgos.compute.spec.billing import Prices
from zgos.runtime.netutil import http_ok
from zgos.runtime.ports import (
    MODEL_DELTA,
    MODEL_PORT,
    PROVIDER_ADMIN_DELTA,
    PROVIDER_ADMIN_PORT,
    PROVIDER_DELTA,
    PROVIDER_PORT,
)
from zgos.runtime.service import DevnetContext, DevnetOptions, Service, ServiceGroup

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.chain.client import Chain
    from zgos.chain.deploy import Deployment

DEVNET_PRICES = Prices(input_price=10**9, output_price=2 * 10**9)  # neuron per token (1 and 2 gwei)
DEMO_FUNDING = 10 * 10**18  # the demo user's sub-account with the devnet provider (10 0G)
DEMO_REFILL_BELOW = 10**18


def compute_ports(options: DevnetOptions) -> tuple[int, int, int]:
    """(model, provider, admin) ports for this devnet."""
    return (options.port(MODEL_PORT, MODEL_DELTA), options.port(PROVIDER_PORT, PROVIDER_DELTA),
            options.port(PROVIDER_ADMIN_PORT, PROVIDER_ADMIN_DELTA))


def publish_gemma(ctx: DevnetContext, chain: Chain, deployment: Deployment, publisher: LocalAccount) -> bytes:
    """Upload the Gemma GGUF to the devnet's storage and register it in ``ModelRegistry`` as a
    base model (both skipped when done: the upload when its root is on ``Flow``, everything when
    it is registered); its model id, the storage root."""
    from zgos.compute.finetune.contracts import ModelRegistry
    from zgos.compute.finetune.models import (
        GEMMA_LICENCE,
        GEMMA_NAME,
        gemma_base_model,
        publish_base_models,
    )
    from zgos.compute.finetune.storage import StorageBlobStore, connect_storage

    gemma = gemma_base_model()
    registry = ModelRegistry(chain, deployment.address("ModelRegistry"))
    if not registry.is_registered(gemma.model_hash):
        store = StorageBlobStore(connect_storage(chain, deployment, ctx.options.storage_urls(), publisher),
                                 ctx.data_dir.service("provider-0") / "scratch")
        publish_base_models({gemma.model_hash: (GEMMA_NAME, GEMMA_LICENCE, gemma)}, registry, store, publisher)
    return gemma.model_hash


def prepare_provider(ctx: DevnetContext) -> None:
    """Publish the base model, register the devnet provider naming it, and give the demo user a
    ready sub-account (idempotent)."""
    # web3 and the model files: only `zg devnet up` needs them, `zg devnet status` starts at once
    from zgos.chain.accounts import devnet_role
    from zgos.chain.client import Chain
    from zgos.chain.deploy import load_deployment
    from zgos.compute.contracts import ComputeContracts, ServiceTerms
    from zgos.compute.model import DEFAULT_MODEL_ID

    _, provider_port, _ = compute_ports(ctx.options)
    chain = Chain(ctx.options.rpc_url)
    deployment = load_deployment(ctx.data_dir.deployment, chain.chain_id)
    contracts = ComputeContracts.from_deployment(chain, deployment)
    provider, user = devnet_role("provider"), devnet_role("user")
    model_id = publish_gemma(ctx, chain, deployment, provider)
    url = ctx.options.url(provider_port)
    contracts.ensure_service(provider, ServiceTerms(url, DEFAULT_MODEL_ID, model_id, DEVNET_PRICES, provider.address))
    if contracts.sub_account(user.address, provider.address).spendable < DEMO_REFILL_BELOW:
        contracts.deposit_and_fund(user, provider.address, DEMO_FUNDING)
    if contracts.acknowledged_signer(user.address, provider.address) != provider.address:
        contracts.acknowledge(user, provider.address, provider.address)


def inference_services(options: DevnetOptions) -> list[Service]:
    model_port, provider_port, admin_port = compute_ports(options)
    model_url, provider_url = options.url(model_port), options.url(provider_port)
    return [
        Service(
            name="model",
            url=model_url,
            argv=lambda ctx: ctx.zg("compute", "model", "serve", "--host", options.host, "--port", str(model_port)),
            ready=lambda ctx: http_ok(model_url + "/v1/models"),
        ),
        Service(
            name="provider-0",
            url=provider_url,
            argv=lambda ctx: ctx.zg(
                "compute", "provider", "serve", "--upstream", model_url, "--host", options.host,
                "--port", str(provider_port), "--admin-host", options.host, "--admin-port", str(admin_port),
                "--account", f"devnet:{DEVNET_ROLES['provider']}",
            ),
            ready=lambda ctx: http_ok(provider_url + "/health"),
            prepare=prepare_provider,
            admin_url=options.url(admin_port),
        ),
    ]


# the provider's model file is uploaded to the devnet's storage before it starts
INFERENCE_GROUP = ServiceGroup("compute", inference_services, needs=("storage",))
