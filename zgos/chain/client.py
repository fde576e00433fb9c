"""``Chain``: one object per process for reading and writing any EVM JSON-RPC endpoint.

Sending follows one path for every zgos process: encode, estimate gas (a revert surfaces its
decoded reason here, before any nonce is spent), check the balance, reserve a nonce
(``nonces.NonceManager``), sign, send and get the receipt in the same call with
``eth_sendRawTransactionSync`` where the node offers it (anvil does), else poll the receipt
every ``RECEIPT_POLL_S`` (a quarter block on a known slower chain). On a chain that may
reorganise, a receipt counts only once ``confirmations`` blocks follow it
(``confirm.wait_for_confirmations``); rate-limited RPC calls are retried with backoff
(``transport.RetryingHTTPProvider``). A nonce clash is retried with a fresh nonce; an underpriced
replacement is retried with fees bumped by ``FEE_BUMP_PERCENT``; a transaction that ran out of
gas because the state moved between estimation and inclusion (another sender's transaction
made the same call dearer), or that reverted in its block but not when replayed on the state
before it, is estimated again (a revert that is real by now surfaces there, with its reason)
and resent once with ``OUT_OF_GAS_MARGIN_PERCENT``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import get_abi_output_types
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3._utils.method_formatters import PYTHONIC_RESULT_FORMATTERS
from web3._utils.rpc_abi import RPC
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD
from web3.types import EventData, TxReceipt

from zgos.chain.artifacts import error_selectors, load_artifact
from zgos.chain.confirm import wait_for_confirmations
from zgos.chain.networks import network_for_chain
from zgos.chain.nonces import NonceManager
from zgos.chain.transport import connect_web3
from zgos.core.errors import ChainError, InsufficientFunds, RpcUnreachable, TxReverted
from zgos.core.hashing import keccak256
from zgos.core.units import format_amount

log = logging.getLogger(__name__)

GAS_MARGIN_PERCENT = 25
OUT_OF_GAS_MARGIN_PERCENT = 100
FEE_BUMP_PERCENT = 25
MAX_SEND_ATTEMPTS = 5
RECEIPT_POLL_S = 0.05
RECEIPT_TIMEOUT_S = 120.0
RPC_TIMEOUT_S = 30.0
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


class _StateMoved(Exception):
    """A mined transaction failed for a reason that did not exist at estimation: it ran out of
    gas, or it reverted in its block but not when replayed on the state before that block."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class SendRefusal(Enum):
    """Why a node refused a signed transaction, as far as the sender acts on it. EVM nodes give
    these refusals no distinct JSON-RPC code (geth, anvil: -32000/-32003 with a message), so
    ``classify_refusal`` reads the message; this is the one place that does."""

    NONCE = "nonce"  # too low or too high: reserve a fresh one
    UNDERPRICED = "underpriced"  # the nonce is taken in the pool: bump the fees, resend
    INSUFFICIENT_FUNDS = "insufficient-funds"
    OTHER = "other"


def classify_refusal(message: str) -> SendRefusal:
    """The ``SendRefusal`` an EVM node's error message states (geth and anvil wording)."""
    message = message.lower()
    if "nonce too low" in message or "nonce too high" in message:
        return SendRefusal.NONCE
    if "underpriced" in message or "already known" in message:
        return SendRefusal.UNDERPRICED
    if "insufficient funds" in message:
        return SendRefusal.INSUFFICIENT_FUNDS
    return SendRefusal.OTHER


UNKNOWN_METHOD_CODE = -32601  # JSON-RPC 2.0 "Method not found"
UNKNOWN_METHOD_WORDS = ("not found", "not supported", "not available", "does not exist", "unsupported",
                        "unknown method")


def is_unknown_method(error: Mapping[str, Any]) -> bool:
    """Whether a JSON-RPC ``error`` says the node lacks the method (geth, reth, 0G's chain, proxies)."""
    message = str(error.get("message", "")).lower()
    return error.get("code") == UNKNOWN_METHOD_CODE or any(word in message for word in UNKNOWN_METHOD_WORDS)


@dataclass(frozen=True)
class Receipt:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    raw: TxReceipt

    def events(self, contract: Contract, event: str) -> list[EventData]:
        """Decode every ``event`` that ``contract`` emitted in this transaction."""
        logs = contract.events[event]().process_receipt(self.raw, errors=DISCARD)
        return [entry for entry in logs if entry["address"] == contract.address]


def decode_revert(data: bytes) -> str:
    """Turn revert data into ``"reason"``, ``"Panic(0x11)"`` or ``"CustomError(arg, ...)"``."""
    if len(data) < 4:
        return "reverted without a reason"
    selector, body = data[:4], data[4:]
    try:
        if selector == ERROR_STRING_SELECTOR:
            return str(abi_decode(["string"], body)[0])
        if selector == PANIC_SELECTOR:
            return f"Panic({hex(abi_decode(['uint256'], body)[0])})"
        if selector in error_selectors():
            name, inputs = error_selectors()[selector]
            values = abi_decode([param["type"] for param in inputs], body)
            shown = ", ".join(v.hex() if isinstance(v, bytes) else str(v) for v in values)
            return f"{name}({shown})"
    except Exception:
        pass
    return f"reverted with data 0x{data.hex()}"


def _revert_data(exc: ContractLogicError) -> bytes | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    return None


def _revert_reason(exc: ContractLogicError) -> str:
    data = _revert_data(exc)
    if data:
        return decode_revert(data)
    return str(exc.message or exc).removeprefix("execution reverted: ").removeprefix("execution reverted")


class Chain:
    """A connection to one EVM chain, with per-sender nonce managers."""

    def __init__(self, rpc_url: str, *, expected_chain_id: int | None = None, confirmations: int | None = None) -> None:
        """Connect to ``rpc_url``; ``confirmations`` (default: the chain's known profile's, else
        0) is how many blocks must follow a transaction's block before ``transact`` returns."""
        self.rpc_url = rpc_url
        self.w3 = connect_web3(rpc_url, RPC_TIMEOUT_S)
        try:
            self.chain_id = self.w3.eth.chain_id
            genesis = self.w3.eth.get_block(0)["hash"]
        except (RpcUnreachable, OSError, Web3RPCError) as exc:
            cause = exc.cause if isinstance(exc, RpcUnreachable) else type(exc).__name__
            raise ChainError(f"cannot reach the chain RPC at {rpc_url} ({cause})",
                             "is the devnet running? start it with `zg devnet up`, or pass --rpc-url") from None
        if expected_chain_id is not None and self.chain_id != expected_chain_id:
            raise ChainError(f"wrong chain: {rpc_url} has chain id {self.chain_id}, expected {expected_chain_id}",
                             "check --rpc-url and the deployment file")
        # Two anvils can share chain id and genesis: the URL tells their nonce books apart.
        endpoint = keccak256(rpc_url.encode()).hex()[:12]
        self._chain_key = f"{self.chain_id}-{HexBytes(genesis).hex()[:12]}-{endpoint}"
        self._nonces: dict[str, NonceManager] = {}
        self._nonces_lock = threading.Lock()
        self._sync_send: bool | None = None  # unknown until the first send
        self._contracts: dict[tuple[str, str], Contract] = {}  # stateless handles, ~2 ms each to build
        profile = network_for_chain(self.chain_id)
        self.confirmations = confirmations if confirmations is not None else profile.confirmations if profile else 0
        self.min_priority_fee = profile.min_priority_fee_wei if profile else 0
        self.receipt_poll_s = max(RECEIPT_POLL_S, profile.block_time_s / 4) if profile else RECEIPT_POLL_S

    # --- reading -------------------------------------------------------------------------

    def contract(self, name: str, address: str) -> Contract:
        """A handle on the deployed contract ``name`` (artifact ABI) at ``address``, built once."""
        if (key := (name, to_checksum_address(address))) not in self._contracts:
            self._contracts[key] = self.w3.eth.contract(address=key[1], abi=load_artifact(name).abi)
        return self._contracts[key]

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(to_checksum_address(address)))

    def call(self, fn: ContractFunction, *, sender: str | None = None, plain: bool = False) -> Any:
        """Call a view function; a revert raises ``TxReverted`` with the decoded reason. ``plain``: a
        tuple decoded by eth_abi alone, without web3's result formatters (~2 ms per array element)."""
        try:
            if plain:
                raw = self.w3.eth.call({"to": fn.address, "data": fn._encode_transaction_data()})
                return tuple(abi_decode(get_abi_output_types(fn.abi), bytes(raw)))
            return fn.call({"from": sender} if sender else {})
        except ContractLogicError as exc:
            raise TxReverted(_revert_reason(exc)) from None

    # --- writing -------------------------------------------------------------------------

    def _nonce_manager(self, address: str) -> NonceManager:
        with self._nonces_lock:
            if address not in self._nonces:
                self._nonces[address] = NonceManager(
                    self._chain_key,
                    address,
                    lambda: int(self.w3.eth.get_transaction_count(to_checksum_address(address), "pending")),
                )
            return self._nonces[address]

    def transact(
        self,
        account: LocalAccount,
        fn: ContractFunction | None = None,
        *,
        to: str | None = None,
        value: int = 0,
        gas: int | None = None,
        data: bytes = b"",
    ) -> Receipt:
        """Send ``fn`` (or a transfer/call to ``to``, or a contract creation when both are
        absent) from ``account``; return its receipt.

        Raises ``TxReverted`` (with the decoded reason) if estimation or execution reverts and
        ``InsufficientFunds`` if the account cannot pay value plus gas.
        """
        if fn is not None:
            to = fn.address
            data = HexBytes(fn._encode_transaction_data())
        try:
            tx = self._priced_transaction(account.address, to, value, gas, data)
        except RpcUnreachable as exc:
            raise ChainError(f"lost the chain RPC at {self.rpc_url} while preparing a transaction ({exc.cause})") from None
        try:
            return self._send(account, tx)
        except _StateMoved as first:
            # A failed transaction changed nothing but its fee, so resending is safe; estimating
            # again first surfaces a revert that is real by now, with its reason.
            log.info("transaction %s (gas limit %d): estimating again", first.what, tx["gas"])
            fresh = {k: v for k, v in tx.items() if k not in ("gas", "nonce")}
            estimate = self._estimate_gas(fresh) * 100 // (100 + GAS_MARGIN_PERCENT)
            tx["gas"] = max(estimate, tx["gas"]) * (100 + OUT_OF_GAS_MARGIN_PERCENT) // 100
            try:
                return self._send(account, tx)
            except _StateMoved as exc:
                raise TxReverted(f"transaction {exc.what}, twice (gas limit {tx['gas']})") from exc

    def _priced_transaction(self, sender: str, to: str | None, value: int, gas: int | None,
                            data: bytes) -> dict[str, Any]:
        """A type-2 transaction from ``sender`` with its gas limit (estimated unless given) and
        fees (twice the latest base fee plus the node's tip), once ``sender`` is seen to afford
        the worst case."""
        tx: dict[str, Any] = {"from": sender, "value": value, "data": HexBytes(data), "chainId": self.chain_id,
                              "type": 2}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        tx["gas"] = self._estimate_gas(tx) if gas is None else gas
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        tip = max(int(self.w3.eth.max_priority_fee), self.min_priority_fee)
        tx["maxPriorityFeePerGas"] = tip
        tx["maxFeePerGas"] = 2 * base_fee + tip
        self._check_funds(sender, value + tx["gas"] * tx["maxFeePerGas"])
        return tx

    def _estimate_gas(self, tx: dict[str, Any]) -> int:
        try:
            estimate = int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise TxReverted(_revert_reason(exc)) from None
        except Web3RPCError as exc:
            message = str(exc)
            if classify_refusal(message) is SendRefusal.INSUFFICIENT_FUNDS:
                raise InsufficientFunds(
                    f"{tx['from']} cannot pay for this transaction",
                    "fund it first, e.g. `zg account fund ADDRESS 10` on the devnet",
                ) from None
            raise ChainError(f"gas estimation failed: {message}") from None
        return estimate * (100 + GAS_MARGIN_PERCENT) // 100

    def _check_funds(self, address: str, needed: int) -> None:
        have = self.balance(address)
        if have < needed:
            raise InsufficientFunds(
                f"{address} has {format_amount(have)}, needs {format_amount(needed)}",
                f"fund it first, e.g. `zg account fund {address} 10` on the devnet",
            )

    def _send(self, account: LocalAccount, tx: dict[str, Any]) -> Receipt:
        """Sign ``tx`` with a reserved nonce and send it until the node takes it (a nonce clash
        gets a fresh nonce; an underpriced replacement, bumped fees); its mined receipt."""
        nonces = self._nonce_manager(account.address)
        for _ in range(MAX_SEND_ATTEMPTS):
            tx["nonce"] = nonces.reserve()
            raw = account.sign_transaction(tx).raw_transaction
            try:
                receipt = self._send_raw(bytes(raw))
            except Web3RPCError as exc:
                nonces.release()
                refusal = classify_refusal(str(exc))
                if refusal is SendRefusal.UNDERPRICED:
                    # Someone else used this nonce in the pool: bump and replace, or move on.
                    tx["maxFeePerGas"] = tx["maxFeePerGas"] * (100 + FEE_BUMP_PERCENT) // 100
                    tx["maxPriorityFeePerGas"] = tx["maxPriorityFeePerGas"] * (100 + FEE_BUMP_PERCENT) // 100 + 1
                if refusal in (SendRefusal.NONCE, SendRefusal.UNDERPRICED):
                    continue
                if refusal is SendRefusal.INSUFFICIENT_FUNDS:
                    raise InsufficientFunds(
                        f"{account.address} cannot pay for this transaction",
                        f"fund it first, e.g. `zg account fund {account.address} 10`",
                    ) from None
                raise ChainError(f"the node refused the transaction: {exc}") from None
            except RpcUnreachable as exc:
                nonces.release()
                raise ChainError(f"lost the chain RPC at {self.rpc_url} while sending ({exc.cause})") from None
            receipt = wait_for_confirmations(self.w3, bytes(raw), receipt, self.confirmations,
                                             timeout_s=RECEIPT_TIMEOUT_S, poll_s=self.receipt_poll_s)
            return self._mined(tx, receipt)
        raise ChainError(f"could not send after {MAX_SEND_ATTEMPTS} attempts (nonce clashes)")

    def _mined(self, tx: dict[str, Any], receipt: TxReceipt) -> Receipt:
        """``receipt`` of ``tx`` if it succeeded; else ``_StateMoved`` (out of gas, or a revert
        the state before its block does not reproduce) or ``TxReverted`` with the reason."""
        if int(receipt["status"]) != 1:
            if int(receipt["gasUsed"]) >= int(tx["gas"]):
                raise _StateMoved("ran out of gas")
            reason = self._replay_reason(tx, int(receipt["blockNumber"]))
            if reason is None:
                raise _StateMoved("reverted in its block but not on the state before it")
            raise TxReverted(reason)
        return Receipt(
            tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            raw=receipt,
        )

    def _send_raw(self, raw: bytes) -> TxReceipt:
        if self._sync_send is not False:
            response = self.w3.provider.make_request(
                "eth_sendRawTransactionSync", [HexBytes(raw).to_0x_hex()]  # type: ignore[arg-type]
            )
            error = response.get("error")
            if error is None:
                self._sync_send = True
                return self._format_receipt(response["result"])
            message = str(error.get("message", ""))
            if "timeout" in message.lower():
                # Accepted into the pool but not mined within the node's wait: keep waiting.
                return self.w3.eth.wait_for_transaction_receipt(
                    HexBytes(keccak256(raw)), timeout=RECEIPT_TIMEOUT_S, poll_latency=self.receipt_poll_s
                )
            if is_unknown_method(error):
                log.info("%s has no eth_sendRawTransactionSync: sending and polling for receipts", self.rpc_url)
                self._sync_send = False
            else:
                raise Web3RPCError(message)
        tx_hash = self.w3.eth.send_raw_transaction(raw)
        return self.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=self.receipt_poll_s
        )

    @staticmethod
    def _format_receipt(raw_receipt: dict[str, Any]) -> TxReceipt:
        """Apply web3's own receipt formatting to a receipt returned by a raw RPC call."""
        return PYTHONIC_RESULT_FORMATTERS[RPC.eth_getTransactionReceipt](raw_receipt)  # type: ignore[no-any-return]

    def _replay_reason(self, tx: dict[str, Any], block: int) -> str | None:
        """The revert reason of ``tx`` replayed on the state before ``block``; None when the
        replay succeeds (the failure came from the block itself: an earlier transaction in it,
        its number or its timestamp)."""
        call = {k: tx[k] for k in ("from", "to", "value", "data", "gas") if k in tx}
        try:
            self.w3.eth.call(call, block - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return _revert_reason(exc)
        except Exception as exc:  # the node cannot replay (pruned state): say so, do not resend
            return f"reverted (the replay to find why failed: {type(exc).__name__})"
        return None

    # --- events --------------------------------------------------------------------------

    def get_logs(
        self, contract: Contract, event: str, from_block: int, to_block: int,
        argument_filters: dict[str, Any] | None = None,
    ) -> Sequence[EventData]:
        return contract.events[event]().get_logs(  # type: ignore[no-any-return]
            from_block=from_block, to_block=to_block, argument_filters=argument_filters
        )
