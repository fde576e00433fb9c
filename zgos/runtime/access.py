"""The per-install token and who may call a local route (``Route.local`` in ``edge.py``).

Spending and admin routes answer only a request whose ``Host`` is the address the service is
bound to (or the URL it announces), whose ``Origin``, if any, is allow-listed, and which carries
the install token: the "Local access" row of the limits table in ``edge.py``. A service whose
operator administers it from another host (``--remote-admin``) accepts that token from callers
off this host too (``LocalAccess.remote``); otherwise JSON-RPC admin methods answer loopback
callers only.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zgos.core.errors import ZgError
from zgos.runtime.listen import compute_host_header, format_host, is_wildcard

TOKEN_BYTES = 32
TOKEN_FILE = "token"
TOKEN_HEADER = "x-zg-token"


@dataclass(frozen=True)
class Refusal:
    """Why the edge answers a request itself: HTTP status, a short kind, a message for people.
    (Here, below ``edge.py``, because ``LocalAccess.check`` returns one.)"""

    status: int
    kind: str
    message: str


# --- the per-install token -------------------------------------------------------------------


def load_or_create_token(path: Path) -> str:
    """The token in ``path``, created (owner read/write only) if absent.

    Like Jupyter's: any local process that can read the file may spend and administer; a
    web page or another user cannot. A token file others can read is refused. Services of one
    install may start at once: the token is written in full to a private temporary file and
    linked into place, so nobody ever reads a half-written token, and the first link wins.
    """
    if path.exists():
        return read_token(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(TOKEN_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return read_token(path)


def read_token(path: Path) -> str:
    """The token in ``path``; ``ZgError`` if it is missing, empty or readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise ZgError(f"cannot read the install token {path}: {exc.strerror}",
                      "start the service once to create it") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ZgError(f"the install token {path} is readable by others", f"chmod 600 {path}")
    if not text:
        raise ZgError(f"the install token {path} is empty", "delete it and restart the service")
    return text


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token a request carries: ``Authorization: Bearer T`` (the ``openai`` client's
    ``api_key``) or ``X-Zg-Token: T``."""
    direct = headers.get(TOKEN_HEADER)
    if direct:
        return direct.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


# --- local access ----------------------------------------------------------------------------


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class LocalAccess:
    """Who may call a local spending or admin route: right ``Host``, allowed ``Origin``, token;
    ``remote``: callers on other hosts may present the token too."""

    token: str
    hosts: frozenset[str]
    origins: frozenset[str] = frozenset()
    remote: bool = False

    @classmethod
    def for_listener(cls, token: str, host: str, port: int, *, origins: Iterable[str] = (),
                     public_url: str | None = None, remote: bool = False) -> LocalAccess:
        """Accept the names of the bound address (all loopback names for a loopback or
        wildcard bind), the ``host:port`` of ``public_url`` (what callers on other hosts dial)
        and origins served from them, plus ``origins``."""
        names = set(LOOPBACK_NAMES) if host in ("127.0.0.1", "localhost", "::1") or is_wildcard(host) else set()
        names.add(format_host(host))
        hosts = {f"{name}:{port}" for name in names}
        if public_url:
            hosts.add(compute_host_header(public_url))
        own = {f"http://{h}" for h in hosts}
        return cls(token, frozenset(hosts), frozenset(own | set(origins)), remote)

    def check(self, headers: Mapping[str, str]) -> Refusal | None:
        """None if the request may proceed, else why not (403 for place, 401 for token)."""
        if headers.get("host", "").lower() not in self.hosts:
            return Refusal(403, "forbidden-host", f"Host {headers.get('host', '')!r} is not this service's address")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return Refusal(403, "forbidden-origin", f"requests from origin {origin!r} are not allowed")
        token = presented_token(headers)
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return Refusal(401, "bad-token", "this call needs the install token "
                           "(`zg compute token`; send it as 'Authorization: Bearer TOKEN')")
        return None
