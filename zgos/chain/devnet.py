"""The chain on a devnet: one anvil, its state saved in the data dir between runs."""

from __future__ import annotations

from pathlib import Path

from zgos.chain.anvil import AnvilConfig
from zgos.runtime.datadir import DataDir
from zgos.runtime.netutil import rpc_ready
from zgos.runtime.service import DevnetContext, DevnetOptions, Service, ServiceGroup


def chain_state_path(data_dir: DataDir) -> Path:
    return data_dir.service("chain") / "state.json"


def chain_services(options: DevnetOptions) -> list[Service]:
    def argv(ctx: DevnetContext) -> list[str]:
        config = AnvilConfig(
            port=ctx.options.chain_port,
            host=ctx.options.host,
            block_time_s=ctx.options.block_time_s,
            state_path=chain_state_path(ctx.data_dir),
        )
        return config.argv()

    return [Service(name="chain", url=options.rpc_url, argv=argv, ready=lambda ctx: rpc_ready(ctx.options.rpc_url))]


CHAIN_GROUP = ServiceGroup("chain", chain_services, needs=())
