"""``zg storage``: run a storage node; upload, download and inspect files; erasure-coded files'
health and repair; the indexer; mining rewards and the miner. A thin layer over
``zgos.storage.node`` and the storage clients, one module per concern."""

from __future__ import annotations

import typer

from zgos.storage.cli.challenge import challenge_command
from zgos.storage.cli.erasure import health_command, repair_command
from zgos.storage.cli.files import download_command, info_command, upload_command
from zgos.storage.cli.mining import miner_app, rewards_command
from zgos.storage.cli.node import node_command
from zgos.storage.indexer.cli import indexer_command

storage_app = typer.Typer(help="Storage: run a node, upload and download files (0G-compatible).", no_args_is_help=True)
storage_app.command("node")(node_command)
storage_app.command("upload")(upload_command)
storage_app.command("download")(download_command)
storage_app.command("info")(info_command)
storage_app.command("indexer")(indexer_command)
storage_app.command("health")(health_command)
storage_app.command("repair")(repair_command)
storage_app.command("rewards")(rewards_command)
storage_app.command("challenge")(challenge_command)
storage_app.add_typer(miner_app, name="miner")
