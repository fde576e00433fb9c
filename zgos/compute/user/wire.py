"""What the user's local proxy (``zg compute serve``) takes and answers, and what the user SDK
returns: pydantic models for the proxy's request bodies and its own answers, ``TypedDict``s for
the plain records the SDK hands back (the CLI prints them as JSON).

Field order is the JSON key order clients see.
"""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, StrictStr
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before Python 3.12


class Wire(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- the proxy's requests ------------------------------------------------------------------


class ChatCall(Wire):
    """What the proxy reads of a chat body (``POST /v1/chat/completions``); the body itself is
    forwarded as given, with ``max_tokens`` defaulted (``client.body_with_defaults``)."""

    model: StrictStr | None = None  # or ``models`` (zgos.compute.spec.routing)
    stream: Any = None  # only JSON ``true`` streams

    @property
    def streaming(self) -> bool:
        return self.stream is True


class VerifyCall(Wire):
    """``POST /v1/verify``: re-check a stored response's signature."""

    id: StrictStr


# --- the proxy's answers -------------------------------------------------------------------


class ProviderState(Wire):
    """One provider as ``GET /v1/providers`` shows it: its service, and the router's view of it."""

    provider: str
    model: str
    url: str
    input_price: int
    output_price: int
    within_price_cap: bool
    score: int = 0  # the auditors' score (AlignmentRegistry), when the router reads it
    slashed: bool = False
    failures: int
    unhealthy_until: float
    strikes: int
    avoided_until: float
    flagged: list[str]
    last_error: str
    served: int
    latency_s: float | None = None  # smoothed time to the answer's headers


class ProvidersView(Wire):
    max_price: int | None
    providers: list[ProviderState]


class SpentWindows(TypedDict):
    hour: int
    day: int


class SpendingSummary(TypedDict):
    """``GET /v1/spending``: spent and topped up per window, holds and caps."""

    spent: SpentWindows
    caps: dict[str, int]
    held: int
    topped_up_today: int
    top_up_cap_per_day: int | None


# --- the SDK's records ---------------------------------------------------------------------


class SubAccountView(TypedDict):
    balance: int
    pending_refund: int
    refund_unlock_at: int
    settled: int
    receipted: int  # the highest receipt this user signed for the provider


class LedgerView(TypedDict):
    user: str
    available: int
    sub_accounts: dict[str, SubAccountView]  # provider -> its sub-account


class RefundResult(TypedDict):
    processed: bool  # True: an unlocked refund was collected; False: one was requested
    requested: NotRequired[int]
    unlock_at: NotRequired[int]
    tx: str


class StoredVerification(TypedDict):
    """``POST /v1/verify`` and ``zg compute verify``: a stored response checked again."""

    id: str
    provider: str
    signer: str
    signature_valid: bool
    matches_local_record: bool
    model: str
    fee: int
    usage: list[int]  # [input tokens, output tokens]
