"""Helpers every ``zg storage`` command shares: which nodes to talk to, under which address
policy, a typed data root, a transfer progress bar and a ready ``StorageClient``."""

from __future__ import annotations

import sys

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from zgos.cli.context import CliContext, console
from zgos.core.errors import ConfigError
from zgos.runtime.addresses import OPEN_POLICY, AddressPolicy
from zgos.storage.client import StorageClient, UploadResult
from zgos.storage.spec.merkle import InvalidProof, parse_hash


def resolve_nodes(cli: CliContext, flags: list[str] | None, indexer: str | None = None, root: bytes | None = None,
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
    from zgos.chain.registry import NodeKind, NodeRegistry
    from zgos.chain.standing import registry_standings
    from zgos.storage.discovery import discover

    deployment = cli.deployment()
    registry = NodeRegistry(cli.chain(), deployment.address("NodeRegistry"))
    standings = registry_standings(cli.chain(), deployment, NodeKind.STORAGE)  # slashed nodes are skipped
    nodes = [peer.url for peer in discover(registry, policy=cli.outbound_policy(), chain_id=deployment.chain_id,
                                           flow_address=deployment.address("Flow"), standings=standings)]
    if not nodes:
        raise ConfigError("no usable storage node is announced on chain", "start one (`zg devnet up`) or pass --node URL")
    return nodes


def storage_client(cli: CliContext, nodes: list[str] | None, account: str | None = None, workers: int = 4,
            indexer: str | None = None, replicas: int = 1) -> StorageClient:
    signer = cli.account(account, role="user")
    return StorageClient(resolve_nodes(cli, nodes, indexer, replicas=replicas), cli.chain(), cli.deployment().address("Flow"),
                         signer, workers=workers, policy=node_policy(cli, nodes))


def transfer_progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=not sys.stdout.isatty(),
    )


def parse_root(text: str) -> bytes:
    try:
        return parse_hash(text, "ROOT")
    except InvalidProof:
        raise ConfigError(f"not a data root: {text!r}", "a root is 0x followed by 64 hex digits") from None


def node_policy(cli: CliContext, flags: list[str] | None) -> AddressPolicy:
    """URLs the user typed in (``--node``) may be anywhere; the registry's or an indexer's are
    held to the data dir's outbound policy."""
    return OPEN_POLICY if flags else cli.outbound_policy()


def print_upload(result: UploadResult, replicas: int) -> None:
    console.print(f"root   0x{result.root.hex()}")
    console.print(f"txSeq  {result.tx_seq}")
    console.print(f"tx     {result.tx_hash or 'none (already on chain)'}")
    console.print(f"sent   {result.segments_sent} segments; every shard finalized on {replicas} node(s)")


STORAGE_SERVICE_PREFIX = "storage-"  # the devnet's storage nodes in network.json


def storage_nodes(cli: CliContext, flags: list[str] | None) -> tuple[str, ...]:
    """Where transactions are read from: ``--storage-node``, else the devnet's storage nodes
    (network.json), else the nodes announced in the NodeRegistry."""
    if flags:
        return tuple(flags)
    services = (cli.data_dir.read_network() or {}).get("services")
    if isinstance(services, dict):
        found = [url for name, url in sorted(services.items()) if name.startswith(STORAGE_SERVICE_PREFIX)]
        if found:
            return tuple(found)
    return tuple(resolve_nodes(cli, None))
