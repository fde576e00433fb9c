"""The indexer's place in the devnet service table (right after the storage nodes).

Port 12345 on the default devnet; a devnet on another chain port (tests) uses chain port +150.
It finds the devnet's nodes through the NodeRegistry they announce themselves in.
"""

from __future__ import annotations

from zgos.runtime.netutil import http_ok
from zgos.runtime.ports import INDEXER_DELTA, INDEXER_PORT
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup


def indexer_port(options: DevnetOptions) -> int:
    return options.port(INDEXER_PORT, INDEXER_DELTA)


def indexer_services(options: DevnetOptions) -> list[Service]:
    port = indexer_port(options)
    url = options.url(port)
    return [
        Service(
            name="indexer",
            url=url,
            argv=lambda ctx: ctx.zg("storage", "indexer", "--host", options.host, "--port", str(port), "--refresh", "1"),
            ready=lambda ctx: http_ok(f"{url}/node/status"),
        )
    ]


# the indexer finds the storage nodes in the NodeRegistry
INDEXER_GROUP = ServiceGroup("indexer", indexer_services, needs=("storage",))
