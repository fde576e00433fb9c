"""Flags every service command shares: where it listens and what it announces.

``--host`` is the address it binds, ``--public-url`` the URL other hosts reach it by (what it
announces on chain, default ``http://HOST:PORT``; a wildcard bind must name one), and
``--remote-admin`` lets its operator call admin methods from another host with the install
token (``zgos.runtime.access.LocalAccess.remote``). The rules are ``zgos.runtime.listen``'s.
"""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_HOST = "127.0.0.1"
HOST_HELP = "Address to bind (0.0.0.0: every address; then --public-url is required)."
PUBLIC_URL_HELP = "URL other hosts reach this service by, announced on chain (default http://HOST:PORT)."
REMOTE_ADMIN_HELP = "Serve admin methods to callers on other hosts too (they must carry the install token)."

HostOpt = Annotated[str, typer.Option("--host", help=HOST_HELP)]
PublicUrlOpt = Annotated[str | None, typer.Option("--public-url", help=PUBLIC_URL_HELP)]
RemoteAdminOpt = Annotated[bool, typer.Option("--remote-admin/--local-admin", help=REMOTE_ADMIN_HELP)]
