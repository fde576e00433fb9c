"""DA on a devnet: ``da_signers`` signers, then the disperser that collects their signatures."""

from __future__ import annotations

from zgos.runtime.netutil import port_in_use
from zgos.runtime.ports import DA_DISPERSER_PORT, DA_SIGNER_DELTA, DA_SIGNER_PORT
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup


def da_services(options: DevnetOptions) -> list[Service]:
    """DA: ``da_signers`` signers (default 4) on 34000+i, then the disperser on 51001."""
    signer_ports = [options.port(DA_SIGNER_PORT + i, DA_SIGNER_DELTA + i) for i in range(options.da_signers)]
    disperser_port = options.port(DA_DISPERSER_PORT, DA_SIGNER_DELTA + options.da_signers)
    signers = [
        Service(
            name=f"da-signer-{i}",
            url=options.url(port, "grpc"),
            argv=lambda ctx, i=i, port=port: ctx.zg("da", "signer", "--index", str(i), "--host", options.host,
                                                    "--port", str(port)),
            ready=lambda ctx, port=port: port_in_use(port, options.host),
        )
        for i, port in enumerate(signer_ports)
    ]
    disperser = Service(
        name="da-disperser",
        url=options.url(disperser_port, "grpc"),
        argv=lambda ctx: ctx.zg("da", "disperser", "--host", options.host, "--port", str(disperser_port)),
        ready=lambda ctx: port_in_use(disperser_port, options.host),
    )
    return [*signers, disperser]


DA_GROUP = ServiceGroup("da", da_services)
