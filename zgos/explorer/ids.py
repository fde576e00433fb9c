"""The ids the explorer's routes take, parsed at the edge: a malformed id is a 400 that says
what was expected; a well-formed id nothing has is each route's 404."""

from __future__ import annotations

from eth_typing import ChecksumAddress
from fastapi import HTTPException
from web3 import Web3

HASH_BYTES = 32
ADDRESS_BYTES = 20


def hex_bytes(text: str) -> bytes | None:
    """The bytes of a 0x-hex string (the 0x optional), or None if it is not hex."""
    try:
        return bytes.fromhex(text.strip().lower().removeprefix("0x"))
    except ValueError:
        return None


def parse_hash32(text: str, what: str) -> bytes:
    """A 32-byte id (tx hash, data root, blob id, model id...) as 0x-hex; 400 otherwise."""
    data = hex_bytes(text)
    if data is None or len(data) != HASH_BYTES:
        raise HTTPException(400, detail=f"{text[:80]!r} is not a {what}: expected 32 bytes as 0x + 64 hex digits")
    return data


def parse_address(text: str) -> ChecksumAddress:
    """A 20-byte address as 0x-hex (any case), checksummed; 400 otherwise."""
    data = hex_bytes(text)
    if data is None or len(data) != ADDRESS_BYTES:
        raise HTTPException(400, detail=f"{text[:80]!r} is not an address: expected 0x + 40 hex digits")
    return Web3.to_checksum_address(data)
