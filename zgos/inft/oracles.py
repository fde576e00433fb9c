"""Finding the INFT oracles: the verifier names their addresses and threshold, the
``NodeRegistry`` their URLs (kind ``INFT_ORACLE``, announced by the oracle's own account), and
each oracle's ``inft_oracleInfo`` its public key, which must hash to its registered address.
So a registry entry or an answer from a stranger cannot stand in for an oracle."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from zgos.chain.registry import NodeKind, NodeRegistry
from zgos.core.errors import ZgError
from zgos.inft.contracts import InftContracts
from zgos.inft.spec.proofs import compute_pubkey_address
from zgos.runtime.netutil import JsonRpcFailure, call_jsonrpc
from zgos.runtime.outbound import OutboundClient

log = logging.getLogger(__name__)

INFO_TIMEOUT_S = 5.0


class OracleError(ZgError):
    """An oracle refused, failed or could not be reached (the message says which and why)."""


@dataclass(frozen=True)
class OracleEndpoint:
    address: str  # checksummed
    url: str
    pubkey: bytes  # 64 bytes, x || y


def parse_pubkey(value: Any) -> bytes:
    text = value if isinstance(value, str) else ""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 64:
        raise OracleError("an oracle public key is 0x and 128 hex digits (x || y)")
    return raw


def find_oracles(contracts: InftContracts, registry: NodeRegistry, http: OutboundClient) -> tuple[list[OracleEndpoint], int]:
    """The registered oracles that answer with their own key, and the verifier's threshold."""
    addresses, threshold = contracts.oracles()
    urls: dict[str, str] = {to_checksum_address(n.operator): n.url for n in registry.usable_nodes(NodeKind.INFT_ORACLE)}
    found = []
    for address in addresses:
        if address not in urls:
            log.warning("oracle %s has announced no URL", address)
            continue
        try:
            info = call_jsonrpc(http, urls[address], "inft_oracleInfo", timeout_s=INFO_TIMEOUT_S)
            pubkey = parse_pubkey(info.get("pubkey") if isinstance(info, dict) else None)
        except (JsonRpcFailure, OracleError) as exc:
            log.warning("oracle %s at %s: %s", address, urls[address], exc)
            continue
        if to_checksum_address(compute_pubkey_address(pubkey)) != address:
            log.warning("oracle at %s answers with a key that is not %s's", urls[address], address)
            continue
        found.append(OracleEndpoint(address, urls[address], pubkey))
    return found, threshold
