"""Our contracts' calls and events decoded by name, from the committed ABIs
(``zgos/chain/artifacts``) of the contracts the deployment lists: a transaction's input becomes
``Flow.submit(submission=...)``, its logs ``Flow.Submit(sender=..., ...)``. Anything sent to or
logged by another address is shown as its selector or first topic, undecoded.

Values go out as JSON the page can show without losing digits: bytes as 0x-hex, integers
beyond 2^53 (JavaScript's exact range) as decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_typing import ABIFunction, HexStr
from eth_utils.abi import event_abi_to_log_topic, function_abi_to_4byte_selector
from web3._utils.contracts import decode_transaction_data
from web3._utils.normalizers import BASE_RETURN_NORMALIZERS
from web3.contract import Contract
from web3.contract.contract import ContractEvent

from zgos.chain.client import Chain
from zgos.chain.deploy import Deployment

MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
SELECTOR_BYTES = 4


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON: bytes -> 0x-hex, big ints -> decimal strings, sequences -> lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class DecodedCall:
    contract: str
    function: str
    args: dict[str, Any]


@dataclass(frozen=True)
class DecodedEvent:
    address: str
    contract: str | None  # None: not one of the deployment's contracts
    event: str | None  # None: an event its ABI does not declare (shown by topic)
    args: dict[str, Any]
    log_index: int


class ContractBook:
    """The deployment's contracts by address, each with its ABI's functions by selector and
    events by topic (each event's decoder built once: building one costs milliseconds)."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self.contracts: dict[str, tuple[str, Contract]] = {}
        self.topics: dict[str, dict[bytes, str]] = {}
        self.functions: dict[str, dict[bytes, ABIFunction]] = {}
        self._events: dict[tuple[str, str], ContractEvent] = {}
        for name, address in deployment.addresses.items():
            contract = chain.contract(name, address)
            self.contracts[address.lower()] = (name, contract)
            self.topics[address.lower()] = {
                event_abi_to_log_topic(entry): str(entry.get("name"))  # type: ignore[arg-type]
                for entry in contract.abi if entry.get("type") == "event"
            }
            self.functions[address.lower()] = {
                function_abi_to_4byte_selector(entry): entry  # type: ignore[misc]
                for entry in contract.abi if entry.get("type") == "function"
            }

    def _event(self, address: str, event: str) -> ContractEvent:
        key = (address.lower(), event)
        if key not in self._events:
            self._events[key] = self.contracts[key[0]][1].events[event]()
        return self._events[key]

    def name_of(self, address: str | None) -> str | None:
        """The deployment's name for ``address`` (None: not one of ours)."""
        found = self.contracts.get((address or "").lower())
        return found[0] if found else None

    def decode_call(self, to: str | None, data: bytes) -> DecodedCall | None:
        """The function and arguments of a call to one of our contracts (None: not ours, or no
        function of its ABI has that selector)."""
        found = self.contracts.get((to or "").lower())
        function = self.functions.get((to or "").lower(), {}).get(data[:SELECTOR_BYTES])
        if found is None or function is None:
            return None
        try:
            args = decode_transaction_data(function, HexStr("0x" + data.hex()), normalizers=BASE_RETURN_NORMALIZERS)
        except ValueError:
            return None
        return DecodedCall(found[0], str(function["name"]), to_jsonable(dict(args)))

    def decode_log(self, log: Mapping[str, Any]) -> DecodedEvent:
        """A receipt's log by event name and arguments when one of our contracts emitted it."""
        address = str(log["address"])
        topics = [bytes(t) for t in log["topics"]]
        found = self.contracts.get(address.lower())
        event = self.topics.get(address.lower(), {}).get(topics[0]) if topics else None
        if found is None or event is None:
            raw = {"topics": ["0x" + t.hex() for t in topics], "data": to_jsonable(bytes(log["data"]))}
            return DecodedEvent(address, found[0] if found else None, None, raw, int(log["logIndex"]))
        decoded = self._event(address, event).process_log(log)
        return DecodedEvent(address, found[0], event, to_jsonable(dict(decoded["args"])), int(log["logIndex"]))
