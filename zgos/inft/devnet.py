"""The INFT oracles' place in the devnet service table: ``inft-oracle-0`` … ``-2`` (ports
7070 + i; on another chain port, chain port + ``INFT_ORACLE_DELTA`` + i), the verifier's
2-of-3 set, each with its devnet account (``devnet_role("inft-oracle", i)``), after the storage
nodes they download from and upload to."""

from __future__ import annotations

from zgos.runtime.netutil import rpc_ready
from zgos.runtime.ports import INFT_ORACLE_DELTA, INFT_ORACLE_PORT
from zgos.runtime.service import DevnetContext, DevnetOptions, Service, ServiceGroup

DEVNET_ORACLES = 3  # the verifier's oracle set on a devnet ...
DEVNET_THRESHOLD = 2  # ... and how many of them must sign


def oracle_argv(ctx: DevnetContext, index: int, port: int) -> list[str]:
    nodes = [arg for url in ctx.options.storage_urls() for arg in ("--storage-node", url)]
    return ctx.zg("inft", "oracle", "--index", str(index), "--host", ctx.options.host, "--port", str(port), *nodes)


def oracle_service(options: DevnetOptions, index: int) -> Service:
    port = options.port(INFT_ORACLE_PORT + index, INFT_ORACLE_DELTA + index)
    url = options.url(port)
    return Service(name=f"inft-oracle-{index}", url=url, argv=lambda ctx: oracle_argv(ctx, index, port),
                   ready=lambda ctx: rpc_ready(url, "inft_oracleInfo"))


def inft_services(options: DevnetOptions) -> list[Service]:
    return [oracle_service(options, i) for i in range(DEVNET_ORACLES)]


INFT_GROUP = ServiceGroup("inft", inft_services, needs=("storage",))
