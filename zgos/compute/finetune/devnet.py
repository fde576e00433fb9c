"""The fine-tuning provider's devnet service (in the compute group).

``finetune-provider`` runs ``zg compute provider serve --finetune`` as the devnet's
``finetune-provider`` account: it uploads Gemma 3 270M's GGUF to storage and registers it (id =
the storage root of the GGUF; only its uploader may) in ``ModelRegistry``, registers its service
in ``FineTuningServing``, then idles on one chain poll per second until a task arrives. Its progress API is on 3082; the newest tuned model is served on
8082 (llama.cpp with the LoRA) behind a broker on 3083 (admin 3084). A devnet on another chain
port puts them at chain port + 4 .. + 7.
"""

from __future__ import annotations

from zgos.chain.networks import DEVNET_ROLES
from zgos.runtime.netutil import http_ok
from zgos.runtime.ports import (
    FINETUNE_DELTA,
    FINETUNE_PORT,
    TUNED_ADMIN_DELTA,
    TUNED_ADMIN_PORT,
    TUNED_BROKER_DELTA,
    TUNED_BROKER_PORT,
    TUNED_MODEL_DELTA,
    TUNED_MODEL_PORT,
)
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup


def finetune_ports(options: DevnetOptions) -> tuple[int, int, int, int]:
    """(progress API, tuned model server, tuned broker, tuned broker admin) ports."""
    return (options.port(FINETUNE_PORT, FINETUNE_DELTA), options.port(TUNED_MODEL_PORT, TUNED_MODEL_DELTA),
            options.port(TUNED_BROKER_PORT, TUNED_BROKER_DELTA), options.port(TUNED_ADMIN_PORT, TUNED_ADMIN_DELTA))


def finetune_services(options: DevnetOptions) -> list[Service]:
    api, model, broker, admin = finetune_ports(options)
    url = options.url(api)
    return [
        Service(
            name="finetune-provider",
            url=url,
            argv=lambda ctx: ctx.zg(
                "finetune", "provider", "serve", "--host", options.host, "--port", str(api), "--tuned-model-port", str(model),
                "--tuned-port", str(broker), "--tuned-admin-port", str(admin),
                "--account", f"devnet:{DEVNET_ROLES['finetune-provider']}",
            ),
            ready=lambda ctx: http_ok(url + "/health"),
        )
    ]


# the fine-tuning provider keeps datasets and adapters in storage; it offers the Gemma file the
# compute group's provider uploads and registers (``ModelRegistry`` takes a base model only from
# its first uploader: started side by side, both would upload it and one would fail to register)
FINETUNE_GROUP = ServiceGroup("finetune", finetune_services, needs=("storage", "compute"))
