"""How the local proxy pays a provider: a receipt for every answer that passed its checks.

``Payer`` checks a plain answer and signs its receipt, posts receipts in the background (a lost
post costs nothing: the next cumulative receipt carries its amount too), and pays a stream cut
short for what arrived, against the provider's signed Response for it
(``ComputeUser.verify_partial``). A provider whose answer fails a check is flagged and unpaid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from zgos.compute.contracts import ServiceInfo
from zgos.compute.pool import Pool, PoolError
from zgos.compute.spec import sse
from zgos.compute.user.client import ComputeUser, SignedRequest, Verified
from zgos.compute.user.router import Router
from zgos.compute.user.verification import ResponseRejected

RECEIPT_TIMEOUT_S = 10.0
PARTIAL_SIGNATURE_ATTEMPTS = 20  # the signed Response of a cut stream: asked for this many times,
PARTIAL_SIGNATURE_WAIT_S = 0.25  # this far apart,
PARTIAL_SIGNATURE_TIMEOUT_S = 5.0  # each answer within this


class Payer:
    """The proxy's receipts, sent through its pool of provider connections."""

    def __init__(self, user: ComputeUser, router: Router, client: Pool) -> None:
        self.user = user
        self.router = router
        self.client = client
        self._background: set[asyncio.Task[Any]] = set()

    async def pay_partial(self, service: ServiceInfo, signed: SignedRequest, output: list[str], text: str) -> None:
        """Receipt a stream cut short for what arrived: fetch the provider's signed Response
        for it (it is written when the provider notices the cut) and pay the smaller of its
        fee and the fee of what arrived. No signed Response, no receipt."""
        url = f"{service.url.rstrip('/')}/v1/proxy/signature/0x{signed.request_hash.hex()}"
        signed_response = None
        for _ in range(PARTIAL_SIGNATURE_ATTEMPTS):
            try:
                status, data = await self.client.get(url, timeout_s=PARTIAL_SIGNATURE_TIMEOUT_S)
            except PoolError:
                status, data = 0, b""
            if status == 200:
                signed_response = data.decode(errors="replace")
                break
            await asyncio.sleep(PARTIAL_SIGNATURE_WAIT_S)
        if signed_response is None:
            return
        try:
            response, amount = await asyncio.to_thread(self.user.verify_partial, service, signed, signed_response,
                                                       output)
        except ResponseRejected as exc:
            self.router.flag(service.provider, exc.reason)
            return
        verified = await asyncio.to_thread(self.user.accept, service, signed, response, text, amount)
        self.send_receipt(service, verified)

    def verify_and_accept(self, service: ServiceInfo, signed: SignedRequest, data: bytes,
                          signed_response: str | None) -> Verified:
        """Check a plain answer and sign its receipt (one trip to a worker thread)."""
        response = self.user.verify(service, signed, data, signed_response, sse.body_output(data))
        return self.user.accept(service, signed, response, sse.body_text(data))

    def send_receipt(self, service: ServiceInfo, verified: Verified) -> None:
        async def post() -> None:
            # If this post is lost, the next receipt (cumulative) carries its amount too.
            with contextlib.suppress(PoolError):
                await self.client.post_json(service.url.rstrip("/") + "/v1/proxy/receipt",
                                            self.user.receipt_payload(verified).model_dump(mode="json"), timeout_s=RECEIPT_TIMEOUT_S)

        self.background_task(post())

    def background_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
