"""``zg storage``: run a storage node; upload, download and inspect files. A thin layer over
``zgos.storage.node`` and ``zgos.storage.client``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from zgos.clictx import CliContext, console, get_ctx
from zgos.core.errors import ConfigError, ZgError
from zgos.core.units import parse_amount
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.ports import STORAGE_PORT
from zgos.storage.client import StorageClient
from zgos.storage.merkle import InvalidProof, parse_hash
from zgos.storage.shard import InvalidShardConfig, ShardConfig

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.storage.node.miner import MinerConfig

storage_app = typer.Typer(help="Storage: run a node, upload and download files (0G-compatible).", no_args_is_help=True)


def _nodes(cli: CliContext, flags: list[str] | None, indexer: str | None = None, root: bytes | None = None,
           replicas: int = 1) -> list[str]:
    """Storage node URLs: ``--node`` flags, else the ``--indexer``'s choice (nodes holding
    ROOT, or nodes covering every shard REPLICAS times), else the usable nodes announced in the
    NodeRegistry (entries with bad URLs, unreachable nodes, nodes of another network or lying
    about their shard are skipped with a logged reason)."""
    if flags:
        return flags
    if indexer:
        from zgos.storage.indexer.client import IndexerClient

        with IndexerClient(indexer) as index:
            urls = index.file_locations(root) if root is not None else index.upload_nodes(replicas)
        if not urls:
            raise ConfigError("the indexer knows no node holding that file" if root is not None
                              else "the indexer knows no usable storage node")
        return urls
    from zgos.chain.registry import NodeRegistry
    from zgos.storage.discovery import discover

    deployment = cli.deployment()
    registry = NodeRegistry(cli.chain(), deployment.address("NodeRegistry"))
    nodes = [peer.url for peer in discover(registry, policy=cli.outbound_policy(), chain_id=deployment.chain_id,
                                           flow_address=deployment.address("Flow"))]
    if not nodes:
        raise ConfigError("no usable storage node is announced on chain", "start one (`zg devnet up`) or pass --node URL")
    return nodes


def _client(cli: CliContext, nodes: list[str] | None, account: str | None = None, workers: int = 4,
            indexer: str | None = None, replicas: int = 1) -> StorageClient:
    from zgos.storage.eccli import node_policy

    signer = cli.account(account, role="user")
    return StorageClient(_nodes(cli, nodes, indexer, replicas=replicas), cli.chain(), cli.deployment().address("Flow"),
                         signer, workers=workers, policy=node_policy(cli, nodes))


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=not sys.stdout.isatty(),
    )


@storage_app.command("node")
def node_command(
    ctx: typer.Context,
    name: str = typer.Option("storage-0", "--name", help="Service name; state lives in DATA_DIR/NAME."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(STORAGE_PORT, "--port"),
    confirmations: int = typer.Option(3, "--confirmations", min=0, help="Blocks behind head to sync."),
    poll: float = typer.Option(0.5, "--poll", min=0.05, help="Seconds between log sync polls."),
    fsync: bool = typer.Option(False, "--fsync", help="fsync every acknowledged write (power-loss safe)."),
    announce: bool = typer.Option(True, "--announce/--no-announce", help="Announce the URL in the NodeRegistry."),
    public_url: str | None = typer.Option(None, "--public-url", help="URL to announce [default http://HOST:PORT]."),
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
    beneficiary: str | None = typer.Option(None, "--beneficiary", help="Address paid the rewards [default: the miner]."),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="Install token the admin_*/miner_* methods require (created 0600 if absent) "
        "[default: DATA_DIR/token, shared by the devnet's services].",
    ),
    rate_limit: float | None = typer.Option(
        None, "--rate-limit", min=0.0,
        help="Segments of work (uploads, downloads, sector proofs) per second per client address, "
        "bursts of twice that; 0 turns the limit off [default: 1000].",
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


@storage_app.command("upload")
def upload_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="File to upload."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL (repeat for several)."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Nodes that must store the file."),
    fee: str | None = typer.Option(None, "--fee", help="Fee to pay (default: exact; overpayment refunded)."),
    account: str | None = typer.Option(None, "--account", help="Account paying the fee."),
    workers: int = typer.Option(4, "--workers", min=1, max=64),
    indexer: str | None = typer.Option(None, "--indexer", help="Indexer URL choosing the nodes (instead of --node)."),
    ec: str | None = typer.Option(None, "--ec", help="Erasure coding K+M (e.g. 4+2) instead of replicas."),
) -> None:
    """Upload PATH: anchor its data root on chain, send its segments, wait for finalization.
    Run it again to resume an interrupted upload."""
    cli = get_ctx(ctx)
    from zgos.storage.eccli import ec_nodes, node_policy, parse_ec, upload_ec

    params = parse_ec(ec) if ec is not None else None
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    fee_wei = None
    if fee is not None:
        try:
            fee_wei = parse_amount(fee)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if params is not None:
        upload_ec(cli, path, params, ec_nodes(cli, node, indexer), node_policy(cli, node), account, workers, fee_wei)
        return
    from zgos.storage.hasher import build_file_tree

    with _client(cli, node, account, workers, indexer, replicas) as client, _progress() as progress:
        hashing = progress.add_task("hashing", total=None)
        tree = build_file_tree(path)
        progress.remove_task(hashing)
        task = progress.add_task("uploading", total=tree.size * replicas)
        result = client.upload(path, fee=fee_wei, replicas=replicas, tree=tree,
                               progress=lambda n: progress.advance(task, n))
    console.print(f"root   0x{result.root.hex()}")
    console.print(f"txSeq  {result.tx_seq}")
    console.print(f"tx     {result.tx_hash or 'none (already on chain)'}")
    console.print(f"sent   {result.segments_sent} segments; every shard finalized on {replicas} node(s)")


def _root(text: str) -> bytes:
    try:
        return parse_hash(text, "ROOT")
    except InvalidProof:
        raise ConfigError(f"not a data root: {text!r}", "a root is 0x followed by 64 hex digits") from None


@storage_app.command("download")
def download_command(
    ctx: typer.Context,
    root: str = typer.Argument(..., help="Data root (0x...)."),
    out: Path = typer.Argument(..., help="Where to write the file."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL (repeat for several)."),
    workers: int = typer.Option(4, "--workers", min=1, max=64),
    indexer: str | None = typer.Option(None, "--indexer", help="Indexer URL locating the file (instead of --node)."),
) -> None:
    """Download ROOT to OUT, verifying every segment; OUT is written only when all verified."""
    cli = get_ctx(ctx)
    data_root = _root(root)
    from zgos.storage.eccli import download_ec, ec_nodes, node_policy

    policy = node_policy(cli, node)
    size = download_ec(cli, data_root, out, ec_nodes(cli, node, indexer), policy, workers)
    if size is not None:
        console.print(f"downloaded {size} bytes to {out} (erasure-coded; verified against 0x{data_root.hex()})")
        return
    nodes = _nodes(cli, node, indexer, data_root)
    with StorageClient(nodes, cli.chain(), cli.deployment().address("Flow"), workers=workers, policy=policy) as client, \
            _progress() as progress:
        task = progress.add_task("downloading", total=client.size_of(data_root))
        file = client.download(data_root, out, progress=lambda n: progress.advance(task, n))
    console.print(f"downloaded {file.size} bytes to {out} (verified against 0x{data_root.hex()}; size from the chain)")


@storage_app.command("info")
def info_command(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Data root (0x...) or tx seq."),
    node: list[str] | None = typer.Option(None, "--node", help="Storage node URL."),
) -> None:
    """Show what the nodes know about a file: seq, size, placement, finalization."""
    from zgos.storage.eccli import node_policy

    cli = get_ctx(ctx)
    with StorageClient(_nodes(cli, node), policy=node_policy(cli, node)) as client:
        location = client.info(seq=int(key)) if key.isdigit() else client.info(_root(key))
        tx = location.info["tx"]
        console.print(f"root       {tx['dataMerkleRoot']}")
        console.print(f"txSeq      {tx['seq']}")
        console.print(f"size       {tx['size']} bytes")
        console.print(f"start      sector {tx['startEntryIndex']}")
        console.print(f"finalized  {location.info['finalized']} (on {location.node})")
        console.print(f"segments   {location.info['uploadedSegNum']} uploaded")


from zgos.storage.eccli import health_command, repair_command  # noqa: E402
from zgos.storage.indexer.cli import indexer_command  # noqa: E402 - registered last

storage_app.command("indexer")(indexer_command)
storage_app.command("health")(health_command)
storage_app.command("repair")(repair_command)

from zgos.storage.minecli import register as _register_mining  # noqa: E402

_register_mining(storage_app)
