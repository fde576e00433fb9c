"""Storage on a devnet: ``storage-i`` nodes (node 0 mines) and the erasure-code repairer."""

from __future__ import annotations

from zgos.chain.networks import DEVNET_ROLES
from zgos.runtime.access import TOKEN_FILE
from zgos.runtime.netutil import http_ok
from zgos.runtime.ports import STORAGE_DELTA, STORAGE_PORT
from zgos.runtime.service import DevnetContext, DevnetOptions, Service, ServiceGroup

# Storage node 0 mines (PoRA) with its operator key at this CPU budget (``DevnetOptions.mine``).
DEVNET_MINE_CPU = "0.05"
REPAIR_INTERVAL_S = 10


def storage_port(options: DevnetOptions, i: int) -> int:
    return options.port(STORAGE_PORT + i, STORAGE_DELTA + i)


def _miner_args(ctx: DevnetContext, i: int) -> list[str]:
    if i != 0 or not ctx.options.mine:
        return []
    return ["--miner-key", f"devnet:{DEVNET_ROLES['storage']}", "--mine-threads", "1", "--mine-cpu", DEVNET_MINE_CPU]


def storage_services(options: DevnetOptions) -> list[Service]:
    """``storage-i`` nodes on ports 5678+i, each announcing itself with ``devnet_role("storage", i)``
    and holding shard ``(i % shards)/shards``; they find each other in the NodeRegistry. Their
    admin methods take the devnet's one install token (``DATA_DIR/token``, made by the first)."""

    def service(i: int) -> Service:
        port = storage_port(options, i)
        url = options.url(port)
        return Service(
            name=f"storage-{i}",
            url=url,
            argv=lambda ctx: ctx.zg(
                "storage", "node", "--name", f"storage-{i}", "--host", options.host, "--port", str(port),
                "--confirmations", "1", "--poll", "0.2",
                "--account", f"devnet:{DEVNET_ROLES['storage'] + i}",
                "--shard", f"{i % options.shards}/{options.shards}",
                "--token-file", str(ctx.data_dir.root / TOKEN_FILE),
                *(_miner_args(ctx, i)),
            ),
            ready=lambda ctx: http_ok(url + "/health"),
        )

    return [service(i) for i in range(options.storage_nodes)]


def repairer_ready(ctx: DevnetContext) -> bool:
    """The repairer wrote its state file: it has scanned the chain once."""
    # the repairer's module loads the storage client: `zg devnet status` stays light without it
    from zgos.storage.repairer import STATE_FILE_NAME

    return (ctx.data_dir.service("repairer") / STATE_FILE_NAME).exists()


def repairer_services(options: DevnetOptions) -> list[Service]:
    """``repairer``: a pass over every erasure-coded file every 10 s, restoring the pieces of
    lost nodes onto the live nodes of their shards (no port; healthy once it scanned the chain)."""
    return [
        Service(
            name="repairer",
            url="-",
            argv=lambda ctx: ctx.zg("storage", "repair", "--watch", str(REPAIR_INTERVAL_S)),
            ready=repairer_ready,
        )
    ]


STORAGE_GROUP = ServiceGroup("storage", storage_services)
# the repairer finds the storage nodes in the NodeRegistry
REPAIRER_GROUP = ServiceGroup("repairer", repairer_services, needs=("storage",))
