"""``zg kv``: KV streams from the command line. Run a KV node (``node``); read (``get``, ``list``,
``watch``), write (``set``, ``del``, ``tx``) and control (``grant-writer``, ``grant-admin``)
streams through it and the storage nodes; name streams (``streams``); follow the node
(``status``). A thin layer over ``zgos.kv.client`` and ``zgos.kv.node``."""

from __future__ import annotations

import typer

from zgos.kv.cli.node import node_command
from zgos.kv.cli.reads import (
    get_command,
    list_command,
    status_command,
    streams_command,
    watch_command,
)
from zgos.kv.cli.writes import (
    del_command,
    grant_admin_command,
    grant_writer_command,
    set_command,
    tx_command,
)

kv_app = typer.Typer(help="KV streams: a key-value store replayed from the storage log (0G-compatible).",
                     no_args_is_help=True)
kv_app.command("node")(node_command)
kv_app.command("set")(set_command)
kv_app.command("get")(get_command)
kv_app.command("del")(del_command)
kv_app.command("list")(list_command)
kv_app.command("tx")(tx_command)
kv_app.command("grant-writer")(grant_writer_command)
kv_app.command("grant-admin")(grant_admin_command)
kv_app.command("watch")(watch_command)
kv_app.command("streams")(streams_command)
kv_app.command("status")(status_command)
