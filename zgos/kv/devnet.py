"""The KV node's place in the devnet service table: ``kv-0`` (port 6789; on another chain port,
chain port + ``KV_DELTA``), after the storage nodes it reads transactions from.

It serves the devnet's default stream, alias ``demo`` (``DEMO_STREAM_ID``, the same on every
devnet), and every other alias of the data dir when it starts (``zg kv streams --add NAME``,
then ``zg devnet stop kv-0 && zg devnet start kv-0``). ``prepare`` writes the ``demo`` alias,
so ``zg kv set demo k v && zg kv get demo k`` works right after ``zg devnet up``. Writes are
signed by the CLI's account (the devnet ``user``): the first write makes it the stream's admin.
"""

from __future__ import annotations

import hashlib

from zgos.kv.aliases import load_aliases, save_alias
from zgos.runtime.netutil import rpc_ready
from zgos.runtime.ports import KV_DELTA, KV_PORT
from zgos.runtime.service import DevnetContext, DevnetOptions, Service, ServiceGroup

DEMO_STREAM = "demo"
DEMO_STREAM_ID = hashlib.sha256(b"zgos devnet stream demo").digest()


def kv_port(options: DevnetOptions) -> int:
    return options.port(KV_PORT, KV_DELTA)


def prepare_kv(ctx: DevnetContext) -> None:
    """Name the devnet's default stream ``demo`` in the data dir (idempotent)."""
    if load_aliases(ctx.data_dir).get(DEMO_STREAM) != DEMO_STREAM_ID:
        save_alias(ctx.data_dir, DEMO_STREAM, DEMO_STREAM_ID)


def served_streams(ctx: DevnetContext) -> list[bytes]:
    """``demo`` first, then the data dir's other aliases."""
    ids = [DEMO_STREAM_ID, *load_aliases(ctx.data_dir).values()]
    return list(dict.fromkeys(ids))


def kv_argv(ctx: DevnetContext, port: int) -> list[str]:
    streams = ",".join("0x" + stream.hex() for stream in served_streams(ctx))
    nodes = [arg for url in ctx.options.storage_urls() for arg in ("--storage-node", url)]
    return ctx.zg("kv", "node", "--name", "kv-0", "--host", ctx.options.host, "--port", str(port),
                  "--streams", streams, *nodes)


def kv_services(options: DevnetOptions) -> list[Service]:
    port = kv_port(options)
    url = options.url(port)
    return [
        Service(
            name="kv-0",
            url=url,
            argv=lambda ctx: kv_argv(ctx, port),
            ready=lambda ctx: rpc_ready(url, "kv_getStatus"),
            prepare=prepare_kv,
        )
    ]


# the KV node reads each transaction's bytes from the storage nodes
KV_GROUP = ServiceGroup("kv", kv_services, needs=("storage",))
