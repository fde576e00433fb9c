"""``zg storage node``: run a storage node (``zgos.storage.node.app``) from the command line.

The flags are the fields of ``NodeFlags``; ``node_command`` resolves them against the CLI
context (deployment, accounts) into a ``NodeServiceConfig`` and hands it to the builder."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer

from zgos.chain.dishonest import check_dishonest_mode
from zgos.cli.context import CliContext, console, get_ctx
from zgos.cli.options import DEFAULT_HOST, HostOpt, PublicUrlOpt, RemoteAdminOpt
from zgos.core.errors import ConfigError, ZgError
from zgos.runtime.logs import configure_service_logging
from zgos.runtime.ports import STORAGE_PORT
from zgos.storage.node.dishonest import DISHONEST_MODES
from zgos.storage.spec.shard import InvalidShardConfig, ShardConfig

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from zgos.storage.miner.config import MinerConfig
    from zgos.storage.node.app import NodeService, NodeServiceConfig
    from zgos.storage.node.responder import ChallengeResponder

Opt = typer.Option


@dataclass(frozen=True)
class NodeFlags:
    """The flags of ``zg storage node``, as typed."""

    name: Annotated[str, Opt("--name", help="Service name; state lives in DATA_DIR/NAME.")] = "storage-0"
    host: HostOpt = DEFAULT_HOST
    port: Annotated[int, Opt("--port")] = STORAGE_PORT
    confirmations: Annotated[int, Opt("--confirmations", min=0, help="Blocks behind head to sync.")] = 3
    poll: Annotated[float, Opt("--poll", min=0.05, help="Seconds between log sync polls.")] = 0.5
    fsync: Annotated[bool, Opt("--fsync", help="fsync every acknowledged write (power-loss safe).")] = False
    announce: Annotated[bool, Opt("--announce/--no-announce", help="Announce the URL in the NodeRegistry.")] = True
    public_url: PublicUrlOpt = None
    remote_admin: RemoteAdminOpt = False
    account: Annotated[str | None, Opt("--account", help="Operator account for the announcement.")] = None
    flow: Annotated[str | None, Opt("--flow", help="Flow address on another chain (default: the deployment's).")] = None
    start_block: Annotated[int, Opt("--start-block", min=0, help="With --flow: first block to sync from.")] = 0
    shard: Annotated[str, Opt("--shard", help="ID/NUM: store flow segments s with s % NUM == ID (NUM a power of two).")] = "0/1"
    peers: Annotated[list[str] | None, Opt("--peers", help="Static peer node URL to sync from (repeat; beside the NodeRegistry).")] = None
    sync: Annotated[bool, Opt("--sync/--no-sync", help="Fetch this shard's segments of every file from peers.")] = True
    sync_workers: Annotated[int, Opt("--sync-workers", min=1, max=64, help="Segments fetched from peers at once.")] = 4
    stuck_timeout: Annotated[float, Opt("--stuck-timeout", min=1.0, help="Seconds before a file's sync is reported stuck.")] = 120.0
    prune_grace: Annotated[float, Opt("--prune-grace", min=0.0, help="Seconds to keep old-shard data after a shard change.")] = 600.0
    miner_key: Annotated[str | None, Opt(
        "--miner-key", envvar="ZGOS_MINER_KEY", show_envvar=True,
        help="Mine with this account (keystore NAME, devnet:N, or a private key in the env var).")] = None
    mine_threads: Annotated[int, Opt("--mine-threads", min=1, max=64, help="PoRA worker threads.")] = 1
    mine_cpu: Annotated[float, Opt("--mine-cpu", min=0.01, max=1.0, help="Busy fraction of each mining thread.")] = 0.25
    beneficiary: Annotated[str | None, Opt("--beneficiary", help="Address paid the rewards (default: the miner).")] = None
    token_file: Annotated[Path | None, Opt(
        "--token-file", help="Install token the admin_*/miner_* methods require (created 0600 if absent) "
        "(default: DATA_DIR/token, shared by the devnet's services).")] = None
    rate_limit: Annotated[float | None, Opt(
        "--rate-limit", min=0.0, help="Segments of work (uploads, downloads, sector proofs) per second per client "
        "address, bursts of twice that; 0 turns the limit off (default: 4000).")] = None

    dishonest: Annotated[str | None, Opt("--dishonest", hidden=True, help="Test-only cheat (devnet only).")] = None


def flags_command(flags_type: type[NodeFlags], run: Callable[[typer.Context, NodeFlags], None]) -> Callable[..., None]:
    """A typer command whose options are the fields of ``flags_type``; it calls ``run`` with
    them collected (the command's help is ``run``'s docstring)."""
    def command(ctx: typer.Context, **values: Any) -> None:
        run(ctx, flags_type(**values))

    hints = get_type_hints(flags_type, include_extras=True)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=f.default)
               for f in fields(flags_type)]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = run.__doc__
    return command


def run_node(ctx: typer.Context, flags: NodeFlags) -> None:
    """Run a storage node: JSON-RPC (zgs_*) on HOST:PORT, log sync from the Flow contract,
    and with --miner-key a PoRA miner earning the storage fees."""
    from zgos.storage.node.app import NodeService

    cli = get_ctx(ctx)
    config = node_service_config(cli, flags)
    configure_service_logging()
    miner_account = _miner_account(cli, flags.miner_key) if flags.miner_key else None
    operator = _operator(cli, flags.account) if config.announce else None
    service = NodeService(config, cli.chain(), operator=operator, miner_account=miner_account)
    responder = _challenge_responder(cli, service, operator) if operator is not None and flags.flow is None else None
    if responder is not None:
        responder.start()
    try:
        service.run(started=lambda: console.print(
            f"storage node {config.name} on {config.url} (shard {config.shard}, flow {config.flow_address}, "
            f"data {config.data_dir}; admin token in {config.token_path})"))
    finally:
        if responder is not None:
            responder.stop()


def _challenge_responder(cli: CliContext, service: NodeService, operator: LocalAccount) -> ChallengeResponder | None:
    """The operator's answers to storage challenges (issue 17), from this node's store; none
    when the deployment has no AlignmentRegistry."""
    from zgos.storage.challenges import StorageChallenges
    from zgos.storage.node.responder import ChallengeResponder

    if "AlignmentRegistry" not in cli.deployment().addresses:
        return None
    node = service.node

    def source(tx_seq: int, sector: int) -> tuple[bytes, list[bytes]]:
        data, proof = node.challenged_sector(tx_seq, sector)
        return data, list(proof.siblings)

    return ChallengeResponder(StorageChallenges.from_deployment(cli.chain(), cli.deployment()), operator, source)


node_command = flags_command(NodeFlags, run_node)


def node_service_config(cli: CliContext, flags: NodeFlags) -> NodeServiceConfig:
    """The node's typed config: the flags resolved against the CLI context."""
    from zgos.runtime.access import TOKEN_FILE
    from zgos.storage.node.app import NodeServiceConfig

    try:
        shard = ShardConfig.parse(flags.shard)
    except InvalidShardConfig as exc:
        raise ConfigError(f"--shard: {exc.message}") from None
    flow_address, chain_id, first_block, registry_address = _flow_source(cli, flags.flow, flags.start_block)
    return NodeServiceConfig(
        name=flags.name, data_dir=cli.data_dir.service(flags.name), rpc_url=cli.rpc_url, flow_address=flow_address,
        chain_id=chain_id, start_block=first_block, registry_address=registry_address,
        token_path=flags.token_file or cli.data_dir.root / TOKEN_FILE, host=flags.host, port=flags.port,
        public_url=_public_url(flags), remote_admin=flags.remote_admin, confirmations=flags.confirmations,
        poll_s=flags.poll, fsync=flags.fsync,
        shard=shard, peers=tuple(flags.peers or ()), sync=flags.sync, sync_workers=flags.sync_workers,
        stuck_timeout_s=flags.stuck_timeout, prune_grace_s=flags.prune_grace, outbound=cli.outbound_policy(),
        rate_limit=flags.rate_limit, announce=flags.announce and flags.flow is None,
        miner=_miner_config(cli, flags) if flags.miner_key else None,
        dishonest=_dishonest(flags.dishonest, chain_id),
    )


def _public_url(flags: NodeFlags) -> str | None:
    """``--public-url`` checked; a wildcard ``--host`` without one is an error (unless the node
    announces nothing), since ``http://0.0.0.0:PORT`` reaches no one."""
    from zgos.runtime.listen import compute_public_url

    if flags.public_url is None and (not flags.announce or flags.flow is not None or not flags.port):
        return None
    return compute_public_url(flags.host, flags.port, flags.public_url)


def _dishonest(mode: str | None, chain_id: int) -> str | None:

    return check_dishonest_mode(mode, DISHONEST_MODES, chain_id)


def _flow_source(cli: CliContext, flow: str | None, start_block: int) -> tuple[str, int, int, str | None]:
    """The Flow to follow, its chain id, the first block to sync and the NodeRegistry: the
    deployment's, or with ``--flow`` a 0G-compatible Flow on any EVM chain (e.g. 0G Galileo)
    and no registry."""
    if flow is not None:
        return flow, cli.chain().chain_id, start_block, None
    deployment = cli.deployment()
    return deployment.address("Flow"), deployment.chain_id, deployment.deploy_block, deployment.address("NodeRegistry")


def _miner_config(cli: CliContext, flags: NodeFlags) -> MinerConfig:
    from eth_utils import is_address, to_checksum_address

    from zgos.storage.miner.config import MinerConfig

    beneficiary = flags.beneficiary
    if beneficiary is not None and not is_address(beneficiary):
        raise ConfigError(f"--beneficiary is not an address: {beneficiary!r}")
    return MinerConfig(mine_address=cli.deployment().address("PoraMine"), threads=flags.mine_threads,
                       cpu_fraction=flags.mine_cpu, beneficiary=to_checksum_address(beneficiary) if beneficiary else None)


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
