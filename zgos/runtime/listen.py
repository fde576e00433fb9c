"""Where a service listens and what it tells other hosts: the bind address (``--host``) and the
announced URL (``--public-url``).

A service binds ``host:port``. Other hosts reach it only through the URL it announces (in the
``NodeRegistry``, ``DASigners``, ``InferenceServing`` ...), so that URL must name an address they
can route to: by default ``scheme://host:port``, and a wildcard bind (``0.0.0.0``, ``::``) has
no such default, so it needs an explicit public URL. Pure: no I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from zgos.core.errors import ConfigError

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
HTTP_SCHEMES = ("http", "https")
GRPC_SCHEMES = ("grpc", "grpcs", "http", "https")


def is_wildcard(host: str) -> bool:
    """Whether binding ``host`` listens on every address (no single address to announce)."""
    return host.strip() in WILDCARD_HOSTS


def format_host(host: str) -> str:
    """``host`` as it appears in a URL or a ``Host`` header (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def validate_public_url(url: str, schemes: tuple[str, ...] = HTTP_SCHEMES, flag: str = "--public-url") -> str:
    """``url`` without a trailing slash if it is ``scheme://host[:port][/path]`` with a scheme in
    ``schemes`` and a routable host (not a wildcard); else ``ConfigError`` naming ``flag``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{flag} {url!r} is not a URL like {schemes[0]}://HOST:PORT",
                          f"give the address other hosts reach this service by ({'/'.join(schemes)})")
    if is_wildcard(parts.hostname):
        raise ConfigError(f"{flag} {url!r} names a wildcard address, which no other host can dial",
                          "name this host's routable address or DNS name")
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise ConfigError(f"{flag} {url!r} has an invalid port") from None
    return url.strip().rstrip("/")


def compute_public_url(host: str, port: int, public_url: str | None, scheme: str = "http",
                       schemes: tuple[str, ...] = HTTP_SCHEMES) -> str:
    """The URL a service bound to ``host:port`` announces: ``public_url`` (validated), else
    ``scheme://host:port``. A wildcard bind without ``public_url`` raises ``ConfigError``."""
    if public_url:
        return validate_public_url(public_url, schemes)
    if is_wildcard(host):
        raise ConfigError(f"--host {host or '0.0.0.0'} listens on every address, so there is no URL to announce",
                          "pass --public-url with the address other hosts reach this service by")
    return f"{scheme}://{format_host(host)}:{port}"


def compute_host_header(url: str) -> str:
    """What a client sends as ``Host`` when it dials ``url``: ``host:port``, lower-case (the
    scheme's default port when the URL names none)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("https", "grpcs") else 80)
    return f"{format_host(parts.hostname or '')}:{port}".lower()
