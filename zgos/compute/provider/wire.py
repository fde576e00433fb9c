"""What the broker's HTTP edge speaks: the headers of a signed request and of a signed answer,
and ``BrokerError``, a refusal with its HTTP status and a short reason code."""

from __future__ import annotations

from zgos.core.errors import ZgError

HEADER_USER = "x-zg-user"
HEADER_NONCE = "x-zg-nonce"
HEADER_MAX_FEE = "x-zg-max-fee"
HEADER_SIGNATURE = "x-zg-signature"
HEADER_RESPONSE = "zg-response"
HEADER_RESPONSE_ID = "zg-res-key"


class BrokerError(ZgError):
    """A request the broker refuses: ``status`` is the HTTP status, ``reason`` a short code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
