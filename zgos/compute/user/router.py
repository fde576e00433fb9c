"""Provider selection for the local proxy: the providers of a model, cheapest healthy first.

``Router`` keeps each provider's health (``ProviderHealth``): a provider that failed (unreachable,
5xx, refused for credit) is tried after every healthy one for a growing backoff; one that broke
the deadline or the size cap is not tried at all for a growing backoff; one whose answer failed
a check is flagged and tried last for ``FLAG_BACKOFF_S``. Providers priced above
``Router.max_price`` per token are never candidates.

With ``standings`` (what auditors hold against each provider: its ``AlignmentRegistry`` record,
read by the caller, refreshed every ``STANDINGS_REFRESH_S``), a slashed provider is never a
candidate and one with a negative score is tried after every provider without one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from zgos.chain.standing import Standing, Standings
from zgos.compute.contracts import ServiceInfo
from zgos.compute.spec.limits import compute_backoff_s, is_price_within_cap
from zgos.compute.spec.routing import RoutingPreferences, order_providers
from zgos.compute.user.client import ComputeUser
from zgos.compute.user.wire import ProviderState, ProvidersView

FLAG_BACKOFF_S = 3600.0
SERVICE_REFRESH_S = 30.0
STANDINGS_REFRESH_S = 10.0  # well within an audit round
LATENCY_WEIGHT = 0.3  # of the newest measurement in the smoothed latency



@dataclass
class ProviderHealth:
    failures: int = 0  # in a row: unreachable, 5xx, refused for credit
    unhealthy_until: float = 0.0  # until then, tried only after every healthy provider
    strikes: int = 0  # in a row: broke the deadline or the size cap
    avoided_until: float = 0.0  # until then, never tried (it can hold a call for a whole deadline)
    flagged: list[str] = field(default_factory=list)
    last_error: str = ""
    served: int = 0
    latency_s: float | None = None  # time to the answer's headers, smoothed (LATENCY_WEIGHT)


class Router:
    """Orders the providers of a model by health, then price (input + output per token).
    Providers priced above ``max_price`` per token (input or output) are never candidates."""

    def __init__(self, user: ComputeUser, only: list[str] | None = None, max_price: int | None = None,
                 standings: Standings | None = None, standings_refresh_s: float = STANDINGS_REFRESH_S) -> None:
        self.user = user
        self.only = {p.lower() for p in only} if only else None
        self.max_price = max_price
        self.health: dict[str, ProviderHealth] = {}
        self._services: list[ServiceInfo] = []
        self._fetched = 0.0
        self._standings_source = standings
        self._standings: dict[str, Standing] = {}
        self._standings_fetched = 0.0
        self._standings_refresh_s = standings_refresh_s

    def standing(self, provider: str) -> Standing:
        if self._standings_source is not None and time.monotonic() - self._standings_fetched >= self._standings_refresh_s:
            self._standings = self._standings_source()
            self._standings_fetched = time.monotonic()
        return self._standings.get(provider.lower(), Standing())

    def services(self) -> list[ServiceInfo]:
        if time.monotonic() - self._fetched > SERVICE_REFRESH_S:
            self._services = [s for s in self.user.providers()
                              if self.only is None or s.provider.lower() in self.only]
            self._fetched = time.monotonic()
        return self._services

    def _health(self, provider: str) -> ProviderHealth:
        return self.health.setdefault(provider, ProviderHealth())

    def describe(self, services: list[ServiceInfo]) -> ProvidersView:
        """The state ``GET /v1/providers`` shows: the price cap, and each provider's service,
        whether it is within that cap, and its health and flags."""
        return ProvidersView(max_price=self.max_price, providers=[ProviderState(
            provider=s.provider, model=s.model, url=s.url, input_price=s.input_price,
            output_price=s.output_price, within_price_cap=self.within_price_cap(s),
            score=self.standing(s.provider).score, slashed=self.standing(s.provider).slashed,
            **vars(self._health(s.provider))) for s in services])

    def within_price_cap(self, service: ServiceInfo) -> bool:
        return is_price_within_cap(service.input_price, service.output_price, self.max_price)

    def candidates(self, model: str, preferences: RoutingPreferences = RoutingPreferences()) -> list[ServiceInfo]:
        """The providers to try for ``model``, in order: healthy before backed off, then by the
        request's ``sort`` (default: auditors' negative scores last, then price)."""
        now = time.monotonic()
        usable = [s for s in self.services() if s.model == model and self.within_price_cap(s)
                  and preferences.admits(s.provider, s.input_price, s.output_price)
                  and self._health(s.provider).avoided_until <= now and not self.standing(s.provider).slashed]
        by_default = sorted(usable, key=lambda s: (self.standing(s.provider).score < 0, s.input_price + s.output_price))
        services = {s.provider: s for s in by_default}
        ordered = order_providers(list(services), preferences.sort,
                                  price=lambda p: services[p].input_price + services[p].output_price,
                                  latency=lambda p: self._health(p).latency_s, score=lambda p: self.standing(p).score)
        return sorted((services[p] for p in ordered), key=lambda s: self._health(s.provider).unhealthy_until > now)

    def measured(self, provider: str, seconds: float) -> None:
        """One more measurement of how long the provider took to start answering."""
        health = self._health(provider)
        previous = health.latency_s
        health.latency_s = seconds if previous is None else LATENCY_WEIGHT * seconds + (1 - LATENCY_WEIGHT) * previous

    def failed(self, provider: str, reason: str = "") -> None:
        health = self._health(provider)
        health.failures += 1
        health.unhealthy_until = time.monotonic() + compute_backoff_s(health.failures)
        health.last_error = reason

    def misbehaved(self, provider: str, reason: str) -> None:
        """The provider held a call past its deadline or sent more than the cap: avoid it."""
        health = self._health(provider)
        health.strikes += 1
        health.avoided_until = max(health.avoided_until, time.monotonic() + compute_backoff_s(health.strikes))
        health.last_error = reason

    def succeeded(self, provider: str) -> None:
        health = self._health(provider)
        health.failures = health.strikes = 0
        health.unhealthy_until = 0.0
        health.served += 1

    def flag(self, provider: str, reason: str) -> None:
        health = self._health(provider)
        health.flagged.append(reason)  # tried last for an hour; it is never paid for a rejected answer
        health.unhealthy_until = time.monotonic() + FLAG_BACKOFF_S
        health.last_error = reason
