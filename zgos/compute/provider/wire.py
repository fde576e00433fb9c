"""What the broker's HTTP edge speaks: the headers of a signed request and of a signed answer,
the JSON bodies it takes and answers (pydantic models, validated once at the edge), and
``BrokerError``, a refusal with its HTTP status and a short reason code.

Field order is the JSON key order clients see: it matches what the broker answered before the
models existed, and OpenAI clients read ``/v1/proxy/models`` as they read OpenAI's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SerializeAsAny,
    StrictStr,
    ValidationError,
    field_serializer,
    field_validator,
)

from zgos.compute.spec import vouchers as v
from zgos.core.errors import ZgError
from zgos.runtime.edge import InvalidJson, parse_json

HEADER_USER = "x-zg-user"
HEADER_NONCE = "x-zg-nonce"
HEADER_MAX_FEE = "x-zg-max-fee"
HEADER_SIGNATURE = "x-zg-signature"
HEADER_RESPONSE = "zg-response"
HEADER_RESPONSE_ID = "zg-res-key"

M = TypeVar("M", bound=BaseModel)


class BrokerError(ZgError):
    """A request the broker refuses: ``status`` is the HTTP status, ``reason`` a short code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class BadBody(ZgError):
    """A request body that is not JSON, nests too deep, or does not fit its model."""


def decode_body(model: type[M], body: bytes) -> M:
    """``body`` as ``model``: JSON no deeper than the edge allows, every field checked; raise
    ``BadBody`` naming the first fields at fault."""
    try:
        return model.model_validate(parse_json(body))
    except InvalidJson as exc:
        raise BadBody(str(exc)) from None
    except ValidationError as exc:
        raise BadBody("; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                for e in exc.errors(include_url=False))) from None


def _signature_of(value: Any) -> bytes:
    """A 65-byte signature, given as ``0x``-hex on the wire (bytes when built in Python)."""
    if isinstance(value, bytes) and len(value) == v.SIGNATURE_BYTES:
        return value
    if not isinstance(value, str):
        raise ValueError("signature must be 0x-hex")
    return v.decode_hex(value, v.SIGNATURE_BYTES)


Signature = Annotated[bytes, BeforeValidator(_signature_of),
                      PlainSerializer(lambda sig: "0x" + sig.hex(), return_type=str)]


class Wire(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- requests ------------------------------------------------------------------------------


class SignedReceipt(Wire):
    """``POST /v1/proxy/receipt``: a user's signed cumulative receipt for this provider."""

    user: StrictStr
    total: int
    signature: Signature


# --- answers -------------------------------------------------------------------------------


class ErrorDetail(Wire):
    message: str
    type: str  # a short reason code
    code: int  # the HTTP status


class ErrorBody(Wire):
    """Every refusal, as OpenAI's API shapes its errors."""

    error: ErrorDetail

    @classmethod
    def of(cls, status: int, reason: str, message: str) -> ErrorBody:
        return cls(error=ErrorDetail(message=message, type=reason, code=status))


class Health(Wire):
    ok: bool = True
    provider: str
    model: str


class ModelCard(Wire):
    id: str
    object: Literal["model"] = "model"
    owned_by: str


class ProviderModelCard(ModelCard):
    model_hash: str  # 0x + the model id: the storage root of the model file


class ModelList(Wire):
    object: Literal["list"] = "list"
    data: list[SerializeAsAny[ModelCard]]


class KeyProof(Wire):
    message: str
    signature: str
    scheme: str = "EIP-191 personal_sign"


class Attestation(Wire):
    provider: str
    signer: str
    tee: bool = False
    note: str
    model_id: str
    model_hash: str
    key_proof: KeyProof


class ReceiptAccepted(Wire):
    user: str
    receipted: int  # the highest receipt total on file for this user


class UserBookView(Wire):
    """``GET /v1/user/{address}`` (admin): what the broker's books say of one user."""

    user: str
    served: int
    receipted: int
    inflight: int
    requests: int


class SettlementRound(Wire):
    """``POST /v1/settle`` (admin): what one settlement round did."""

    users: int  # users with a due receipt
    settled: int
    paid: int
    txs: list[str]
    tx: str | None  # the last transaction
    gas: int
    skipped: list[str]
    failed: list[str]


class BrokerStatus(Wire):
    """``GET /v1/status`` (admin)."""

    provider: str
    signer: str
    model: str
    requests: int
    served: int
    receipted: int
    settled: int
    unsettled: int
    balance: int
    users: int
    prompts_tokenized: int
    last_settlement: SettlementRound | None  # None before the first round that sent a transaction
    pid: int

    @field_validator("last_settlement", mode="before")
    @classmethod
    def _none_before_the_first(cls, value: Any) -> Any:
        return None if value == {} else value

    @field_serializer("last_settlement")
    def _empty_before_the_first(self, value: SettlementRound | None) -> dict[str, Any]:
        return {} if value is None else value.model_dump()


class ExecutorInfo(BaseModel):
    """``GET /v1/agents/executor``: the account this provider runs agents as, and its public key
    (64 bytes, x || y, hex), which hashes to that address."""

    address: str
    pubkey: str
