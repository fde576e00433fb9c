"""``ComputeContracts``: typed access to ``LedgerManager`` and ``InferenceServing``.

One object wraps both contracts for the user SDK, the provider broker and the CLI: reads
return small dataclasses, writes go through ``Chain.transact`` (reverts raise ``TxReverted``
with the decoded custom error). Amounts are neuron. ``DEPLOY_PLAN`` deploys both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.contract import Contract

from zgos.chain.client import Chain, Receipt
from zgos.chain.deploy import Addresses, ContractPlan, Deployment
from zgos.chain.registry import register_or_update
from zgos.compute.spec.billing import Prices
from zgos.compute.spec.vouchers import Domain
from zgos.compute.spec.vouchers import Receipt as VoucherReceipt
from zgos.core.errors import TxReverted, ZgError
from zgos.core.hashing import keccak256


class ServiceNotRegistered(ZgError):
    """The address has no inference service in the registry."""


@dataclass(frozen=True)
class ServiceInfo:
    provider: str
    url: str
    model: str
    model_hash: bytes
    input_price: int
    output_price: int
    signer: str
    verifiability: str
    updated_at: int

    @property
    def prices(self) -> Prices:
        return Prices(self.input_price, self.output_price)


    @property
    def terms(self) -> ServiceTerms:
        return ServiceTerms(self.url, self.model, self.model_hash, self.prices, checksum(self.signer))


@dataclass(frozen=True)
class ServiceTerms:
    """What a provider offers in ``InferenceServing``: what it registers and compares at start."""

    url: str
    model: str
    model_hash: bytes
    prices: Prices
    signer: str  # checksummed


@dataclass(frozen=True)
class SubAccount:
    balance: int
    pending_refund: int
    refund_unlock_at: int

    @property
    def spendable(self) -> int:
        """What new requests may still be charged against (balance minus pending refund)."""
        return self.balance - self.pending_refund


@dataclass(frozen=True)
class LedgerEvent:
    """A ``LedgerManager`` event about one user's sub-account with a provider: ``kind`` is
    ``RefundRequested`` (``unlock_at`` set) or ``Funded`` (which also cancels a refund)."""

    kind: str
    user: str
    unlock_at: int
    block: int


REFUND_REQUESTED_TOPIC = "0x" + keccak256(b"RefundRequested(address,address,uint256,uint256)").hex()
FUNDED_TOPIC = "0x" + keccak256(b"Funded(address,address,uint256)").hex()
TX_BASE_GAS = 21_000
CALLDATA_ZERO_BYTE_GAS = 4
CALLDATA_NONZERO_BYTE_GAS = 16


def execution_gas(chain: Chain, receipt: Receipt) -> int:
    """Gas a transaction spent beyond its intrinsic cost (21,000 + 4 per zero and 16 per
    non-zero calldata byte): what the contract code itself consumed. Two settlements of
    different users differ in calldata (addresses, signatures) but not in this."""
    data = bytes(chain.w3.eth.get_transaction(receipt.raw["transactionHash"])["input"])
    zeros = data.count(0)
    intrinsic = TX_BASE_GAS + zeros * CALLDATA_ZERO_BYTE_GAS + (len(data) - zeros) * CALLDATA_NONZERO_BYTE_GAS
    return receipt.gas_used - intrinsic


def checksum(address: str) -> str:
    return str(to_checksum_address(address))


class ComputeContracts:
    """The compute network's two contracts on one chain."""

    def __init__(self, chain: Chain, ledger_address: str, serving_address: str) -> None:
        self.chain = chain
        self.ledger: Contract = chain.contract("LedgerManager", ledger_address)
        self.serving: Contract = chain.contract("InferenceServing", serving_address)
        self.domain = Domain(chain.chain_id, self.serving.address)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> ComputeContracts:
        return cls(chain, deployment.address("LedgerManager"), deployment.address("InferenceServing"))

    # --- reads ---------------------------------------------------------------------------

    def available(self, user: str) -> int:
        return int(self.chain.call(self.ledger.functions.available(checksum(user))))

    def lock_time(self) -> int:
        return int(self.chain.call(self.ledger.functions.lockTime()))

    def sub_account(self, user: str, provider: str) -> SubAccount:
        balance, pending, unlock = self.chain.call(
            self.ledger.functions.getSubAccount(checksum(user), checksum(provider))
        )
        return SubAccount(int(balance), int(pending), int(unlock))

    def providers_of(self, user: str) -> list[str]:
        return [str(p) for p in self.chain.call(self.ledger.functions.getProviders(checksum(user)))]

    def service(self, provider: str) -> ServiceInfo:
        try:
            raw = self.chain.call(self.serving.functions.getService(checksum(provider)))
        except TxReverted:
            raise ServiceNotRegistered(
                f"{provider} has no inference service", "see `zg compute providers`"
            ) from None
        url, model, model_hash, input_price, output_price, signer, verifiability, updated_at = raw
        return ServiceInfo(
            checksum(provider), str(url), str(model), bytes(model_hash), int(input_price),
            int(output_price), str(signer), str(verifiability), int(updated_at),
        )

    def services(self) -> list[ServiceInfo]:
        providers = self.chain.call(self.serving.functions.getProviders())
        return [self.service(str(p)) for p in providers]

    def acknowledged_signer(self, user: str, provider: str) -> str:
        return str(self.chain.call(
            self.serving.functions.acknowledgedSigner(checksum(user), checksum(provider))
        ))

    def settled(self, user: str, provider: str) -> int:
        return int(self.chain.call(self.serving.functions.settled(checksum(user), checksum(provider))))

    def provider_ledger_events(self, provider: str, from_block: int, to_block: int) -> list[LedgerEvent]:
        """Every ``RefundRequested`` and ``Funded`` naming ``provider`` in the block range: one
        ``eth_getLogs`` (both events index user, then provider)."""
        provider_topic = "0x" + "00" * 12 + provider.lower().removeprefix("0x")
        logs = self.chain.w3.eth.get_logs({  # type: ignore[typeddict-item]
            "address": self.ledger.address, "fromBlock": from_block, "toBlock": to_block,
            "topics": [[REFUND_REQUESTED_TOPIC, FUNDED_TOPIC], None, provider_topic],
        })
        events = []
        for entry in logs:
            topic = "0x" + bytes(entry["topics"][0]).hex()
            user = "0x" + bytes(entry["topics"][1])[-20:].hex()
            data = bytes(entry["data"])
            if topic == REFUND_REQUESTED_TOPIC:
                events.append(LedgerEvent("RefundRequested", user, int.from_bytes(data[32:64], "big"),
                                          int(entry["blockNumber"])))
            else:
                events.append(LedgerEvent("Funded", user, 0, int(entry["blockNumber"])))
        return events

    # --- user writes ---------------------------------------------------------------------

    def deposit(self, user: LocalAccount, amount: int) -> Receipt:
        return self.chain.transact(user, self.ledger.functions.deposit(), value=amount)

    def withdraw(self, user: LocalAccount, amount: int) -> Receipt:
        return self.chain.transact(user, self.ledger.functions.withdraw(amount))

    def fund(self, user: LocalAccount, provider: str, amount: int) -> Receipt:
        return self.chain.transact(user, self.ledger.functions.fund(checksum(provider), amount))

    def deposit_and_fund(self, user: LocalAccount, provider: str, amount: int) -> Receipt:
        return self.chain.transact(
            user, self.ledger.functions.depositAndFund(checksum(provider)), value=amount
        )

    def request_refund(self, user: LocalAccount, provider: str, amount: int) -> Receipt:
        return self.chain.transact(user, self.ledger.functions.requestRefund(checksum(provider), amount))

    def process_refund(self, user: LocalAccount, provider: str) -> Receipt:
        return self.chain.transact(user, self.ledger.functions.processRefund(checksum(provider)))

    def acknowledge(self, user: LocalAccount, provider: str, signer: str) -> Receipt:
        return self.chain.transact(
            user, self.serving.functions.acknowledgeSigner(checksum(provider), checksum(signer))
        )

    # --- provider writes -----------------------------------------------------------------

    def register(
        self, provider: LocalAccount, *, url: str, model: str, model_hash: bytes,
        prices: Prices, signer: str, verifiability: str = "",
    ) -> Receipt:
        return self.chain.transact(provider, self.serving.functions.addOrUpdateService(
            url, model, model_hash, prices.input_price, prices.output_price, checksum(signer),
            verifiability,
        ))

    def registered_terms(self, provider: str) -> ServiceTerms | None:
        try:
            return self.service(provider).terms
        except ServiceNotRegistered:
            return None

    def ensure_service(self, provider: LocalAccount, terms: ServiceTerms) -> bool:
        """Register ``provider``'s service on ``terms``, or update it if it says anything else;
        returns whether a transaction was sent."""
        return register_or_update(
            lambda: self.registered_terms(provider.address), terms,
            lambda t: self.register(provider, url=t.url, model=t.model, model_hash=t.model_hash,
                                    prices=t.prices, signer=t.signer))

    def remove_service(self, provider: LocalAccount) -> Receipt:
        return self.chain.transact(provider, self.serving.functions.removeService())

    def settle(self, provider: LocalAccount, vouchers: Sequence[tuple[VoucherReceipt, bytes]]) -> Receipt:
        """Submit receipts (one per user) in one transaction: ``settle`` for one receipt
        (reverts if it pays nothing), ``settleBatch`` for several (skips bad ones)."""
        if len(vouchers) == 1:
            receipt, signature = vouchers[0]
            return self.chain.transact(provider, self.serving.functions.settle(
                checksum(receipt.user), receipt.total, signature
            ))
        return self.settle_batch(provider, vouchers)

    def settle_batch(self, provider: LocalAccount, vouchers: Sequence[tuple[VoucherReceipt, bytes]]) -> Receipt:
        """``settleBatch``: pays every good voucher, skips a bad one with ``SettlementSkipped``."""
        batch = [(checksum(r.user), r.total, sig) for r, sig in vouchers]
        return self.chain.transact(provider, self.serving.functions.settleBatch(batch))


# --- Inference's part of the deploy plan (zgos.devnet.plan) ----------------------------------

REFUND_LOCK_TIME_S = 86400  # compute refunds unlock after 24 h (0G's default, compute.md §2)


def _authorize_serving(chain: Chain, deployer: LocalAccount, addresses: Addresses) -> None:
    """Setup step: let the serving contract charge sub-accounts in the LedgerManager."""
    ledger = chain.contract("LedgerManager", addresses["LedgerManager"])
    chain.transact(deployer, ledger.functions.setServing(addresses["InferenceServing"], True))


DEPLOY_PLAN: list[ContractPlan] = [
    ContractPlan("LedgerManager", args=lambda _: [REFUND_LOCK_TIME_S]),
    ContractPlan(
        "InferenceServing",
        depends=("LedgerManager",),
        args=lambda a: [a["LedgerManager"]],
        setup=_authorize_serving,
    ),
]
