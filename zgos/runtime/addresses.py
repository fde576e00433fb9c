"""Which addresses a call to a stranger's URL may reach: the address classes and the policy.

Pure (no I/O): ``zgos.runtime.outbound`` applies it to every connection, ``zgos.compute.pool``
to the compute proxy's. A URL read from the chain is a claim by whoever wrote it; pointing a
node's or a user's client at their own router or laptop must not work unless they allow it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

LOOPBACK = "loopback"
PRIVATE = "private"
LINK_LOCAL = "link-local"
GLOBAL = "global"
UNSPECIFIED = "unspecified"
MULTICAST = "multicast"
RESERVED = "reserved"
ALLOWABLE_CLASSES = (LOOPBACK, PRIVATE, LINK_LOCAL)  # what a policy may open; the rest never are
SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: embeds an IPv4 address

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def compute_address_class(address: Address) -> str:
    """The class of ``address`` the policy decides on.

    IPv4-mapped (``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::a.b.c.d``) IPv6 addresses take the class
    of the IPv4 address they carry. Order matters: unspecified, multicast, loopback, link-local,
    then global; what is left is private (RFC 1918, RFC 4193, RFC 6598, documentation ranges)
    unless Python's table calls it reserved.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return compute_address_class(address.ipv4_mapped)
        if address in NAT64_PREFIX:
            return compute_address_class(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.is_unspecified:
        return UNSPECIFIED
    if address.is_multicast:
        return MULTICAST
    if address.is_loopback:
        return LOOPBACK
    if address.is_link_local:
        return LINK_LOCAL
    if address.is_global:
        return GLOBAL
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return PRIVATE
    if address.is_reserved:
        return RESERVED
    return PRIVATE


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-global addresses an outbound call may reach. Global addresses always may;
    unspecified, multicast and reserved ones never may."""

    allow_loopback: bool = False
    allow_private: bool = False
    allow_link_local: bool = False

    @classmethod
    def parse(cls, text: str) -> AddressPolicy:
        """``"loopback,private"`` style lists; ``""`` or ``"none"`` allows only global addresses.
        Raises ``ValueError`` naming an unknown word."""
        words = {w.strip().lower() for w in text.replace(" ", ",").split(",") if w.strip()} - {"none"}
        unknown = words - set(ALLOWABLE_CLASSES)
        if unknown:
            raise ValueError(f"unknown address class {sorted(unknown)[0]!r}: use {', '.join(ALLOWABLE_CLASSES)}")
        return cls(LOOPBACK in words, PRIVATE in words, LINK_LOCAL in words)

    def allowed_classes(self) -> tuple[str, ...]:
        flags = (self.allow_loopback, self.allow_private, self.allow_link_local)
        return (GLOBAL, *(name for name, on in zip(ALLOWABLE_CLASSES, flags, strict=True) if on))

    def refusal(self, address: Address) -> str | None:
        """Why a call may not connect to ``address``, or None if it may."""
        kind = compute_address_class(address)
        if kind in self.allowed_classes():
            return None
        return f"{address} is a {kind} address (allowed: {', '.join(self.allowed_classes())})"


DEVNET_POLICY = AddressPolicy(allow_loopback=True)  # every devnet service listens on 127.0.0.1
OPEN_POLICY = AddressPolicy(True, True, True)  # URLs the user typed in (``--node``), not announced
