"""The explorer's place in the devnet service table (last: it shows everything else)."""

from __future__ import annotations

from zgos.runtime.netutil import http_ok
from zgos.runtime.ports import EXPLORER_DELTA, EXPLORER_PORT
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup


def explorer_services(options: DevnetOptions) -> list[Service]:
    port = options.port(EXPLORER_PORT, EXPLORER_DELTA)
    url = options.url(port)
    return [
        Service(
            name="explorer",
            url=url,
            argv=lambda ctx: ctx.zg("explorer", "serve", "--host", options.host, "--port", str(port)),
            ready=lambda ctx: http_ok(f"{url}/health"),
        )
    ]


EXPLORER_GROUP = ServiceGroup("explorer", explorer_services, last=True)
