"""``zg storage node``: run a storage node (``zgos.storage.node.app``) from the command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from zgos.cli.context import CliContext, console, get_ctx
from zgos.core.errors import ConfigError, ZgError
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.ports import STORAGE_PORT
from zgos.storage.spec.shard import InvalidShardConfig, ShardConfig

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.storage.node.miner import MinerConfig


def node_command(
    ctx: typer.Context,
    name: str = typer.Option("storage-0", "--name", help="Service name; state lives in DATA_DIR/NAME."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(STORAGE_PORT, "--port"),
    confirmations: int = typer.Option(3, "--confirmations", min=0, help="Blocks behind head to sync."),
    poll: float = typer.Option(0.5, "--poll", min=0.05, help="Seconds between log sync polls."),
    fsync: bool = typer.Option(False, "--fsync", help="fsync every acknowledged write (power-loss safe)."),
    announce: bool = typer.Option(True, "--announce/--no-announce", help="Announce the URL in the NodeRegistry."),
    public_url: str | None = typer.Option(None, "--public-url", help="URL to announce (default http://HOST:PORT)."),
    account: str | None = typer.Option(None, "--account", help="Operator account for the announcement."),
    flow: str | None = typer.Option(None, "--flow", help="Flow address on another chain (default: the deployment's)."),
    start_block: int = typer.Option(0, "--start-block", min=0, help="With --flow: first block to sync from."),
    shard: str = typer.Option("0/1", "--shard", help="ID/NUM: store flow segments s with s % NUM == ID (NUM a power of two)."),
    peers: list[str] | None = typer.Option(None, "--peers", help="Static peer node URL to sync from (repeat; beside the NodeRegistry)."),
    sync: bool = typer.Option(True, "--sync/--no-sync", help="Fetch this shard's segments of every file from peers."),
    sync_workers: int = typer.Option(4, "--sync-workers", min=1, max=64, help="Segments fetched from peers at once."),
    stuck_timeout: float = typer.Option(120.0, "--stuck-timeout", min=1.0, help="Seconds before a file's sync is reported stuck."),
    prune_grace: float = typer.Option(600.0, "--prune-grace", min=0.0, help="Seconds to keep old-shard data after a shard change."),
    miner_key: str | None = typer.Option(
        None, "--miner-key", envvar="ZGOS_MINER_KEY", show_envvar=True,
        help="Mine with this account (keystore NAME, devnet:N, or a private key in the env var).",
    ),
    mine_threads: int = typer.Option(1, "--mine-threads", min=1, max=64, help="PoRA worker threads."),
    mine_cpu: float = typer.Option(0.25, "--mine-cpu", min=0.01, max=1.0, help="Busy fraction of each mining thread."),
    beneficiary: str | None = typer.Option(None, "--beneficiary", help="Address paid the rewards (default: the miner)."),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="Install token the admin_*/miner_* methods require (created 0600 if absent) "
        "(default: DATA_DIR/token, shared by the devnet's services).",
    ),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", min=0.0,
        help="Segments of work (uploads, downloads, sector proofs) per second per client address, "
        "bursts of twice that; 0 turns the limit off (default: 1000).",
    ),
) -> None:
    """Run a storage node: JSON-RPC (zgs_*) on HOST:PORT, log sync from the Flow contract,
    and with --miner-key a PoRA miner earning the storage fees."""
    from zgos.runtime.access import TOKEN_FILE
    from zgos.storage.node.app import NodeService, NodeServiceConfig

    cli = get_ctx(ctx)
    try:
        shard_config = ShardConfig.parse(shard)
    except InvalidShardConfig as exc:
        raise ConfigError(f"--shard: {exc.message}") from None
    configure_service_logging()
    flow_address, chain_id, first_block, registry_address = _flow_source(cli, flow, start_block)
    config = NodeServiceConfig(
        name=name, data_dir=cli.data_dir.service(name), rpc_url=cli.rpc_url, flow_address=flow_address,
        chain_id=chain_id, start_block=first_block, registry_address=registry_address,
        token_path=token_file or cli.data_dir.root / TOKEN_FILE, host=host, port=port, public_url=public_url,
        confirmations=confirmations, poll_s=poll, fsync=fsync, shard=shard_config, peers=tuple(peers or ()),
        sync=sync, sync_workers=sync_workers, stuck_timeout_s=stuck_timeout, prune_grace_s=prune_grace,
        outbound=cli.outbound_policy(), rate_limit=rate_limit, announce=announce and flow is None,
        miner=_miner_config(cli, mine_threads, mine_cpu, beneficiary) if miner_key else None,
    )
    miner_account = _miner_account(cli, miner_key) if miner_key else None
    operator = _operator(cli, account) if config.announce else None
    service = NodeService(config, cli.chain(), operator=operator, miner_account=miner_account)
    service.run(started=lambda: console.print(
        f"storage node {name} on {config.url} (shard {shard_config}, flow {flow_address}, data {config.data_dir}; "
        f"admin token in {config.token_path})"))


def _flow_source(cli: CliContext, flow: str | None, start_block: int) -> tuple[str, int, int, str | None]:
    """The Flow to follow, its chain id, the first block to sync and the NodeRegistry: the
    deployment's, or with ``--flow`` a 0G-compatible Flow on any EVM chain (e.g. 0G Galileo)
    and no registry."""
    if flow is not None:
        return flow, cli.chain().chain_id, start_block, None
    deployment = cli.deployment()
    return deployment.address("Flow"), deployment.chain_id, deployment.deploy_block, deployment.address("NodeRegistry")


def _miner_config(cli: CliContext, threads: int, cpu: float, beneficiary: str | None) -> MinerConfig:
    from eth_utils import is_address, to_checksum_address

    from zgos.storage.node.miner import MinerConfig

    if beneficiary is not None and not is_address(beneficiary):
        raise ConfigError(f"--beneficiary is not an address: {beneficiary!r}")
    return MinerConfig(mine_address=cli.deployment().address("PoraMine"), threads=threads, cpu_fraction=cpu,
                       beneficiary=to_checksum_address(beneficiary) if beneficiary else None)


def _miner_account(cli: CliContext, key: str) -> LocalAccount:
    """The miner's account; the key is resolved like every account and never printed."""
    from zgos.chain.accounts import account_from_private_key

    key_text = key.strip()
    if key_text.removeprefix("0x").isalnum() and len(key_text.removeprefix("0x")) == 64:
        return account_from_private_key(key_text)
    return cli.account(key_text, role=None)


def _operator(cli: CliContext, account: str | None) -> LocalAccount | None:
    """The account announcing the node; without one (e.g. no key on a public chain) the node
    serves unannounced."""
    try:
        return cli.account(account, role="storage")
    except ZgError as exc:
        logging.getLogger("zgos.storage.announce").warning("not announcing the node: %s", exc)
        return None
