"""What this process has seen of each provider: a circuit breaker, Retry-After skips, and the
latency (time to first byte) and throughput (completion tokens per second) of routed traffic."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

EWMA_WEIGHT = 0.3  # how much one new observation moves the average


@dataclass
class ProviderHealth:
    failures: int = 0  # consecutive
    open_until: float = 0.0  # circuit open (skipped) until then; after it, one probe goes through
    probing: bool = False
    retry_after_until: float = 0.0  # a 429's Retry-After
    latency_ms: float | None = None
    tokens_per_s: float | None = None


class Health:
    def __init__(
        self, failures_to_open: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown = cooldown
        self.clock = clock
        self.providers: dict[str, ProviderHealth] = {}

    def of(self, slug: str) -> ProviderHealth:
        state = self.providers.get(slug)
        if state is None:
            state = self.providers[slug] = ProviderHealth()
        return state

    def blocked_until(self, slug: str) -> float | None:
        """When a provider may be tried again, or None when it may be tried now."""
        state = self.providers.get(slug)
        if state is None:
            return None
        now = self.clock()
        if state.retry_after_until > now:
            return float(state.retry_after_until)
        if state.open_until > now:
            return float(state.open_until)
        if state.open_until and state.probing:
            return float(now) + 1.0  # one probe at a time while half-open
        return None

    def begin(self, slug: str) -> None:
        state = self.of(slug)
        if state.open_until and state.open_until <= self.clock():
            state.probing = True

    def succeeded(self, slug: str, latency_ms: float | None = None) -> None:
        state = self.of(slug)
        state.failures = 0
        state.open_until = 0.0
        state.probing = False
        if latency_ms is not None:
            state.latency_ms = _ewma(state.latency_ms, latency_ms)

    def failed(self, slug: str) -> None:
        state = self.of(slug)
        state.failures += 1
        if state.probing or state.failures >= self.failures_to_open:
            state.open_until = self.clock() + self.cooldown
        state.probing = False

    def abandoned(self, slug: str) -> None:
        """An attempt ended without telling anything about the provider's health (client gone, a 404)."""
        state = self.providers.get(slug)
        if state is not None:
            state.probing = False

    def rate_limited(self, slug: str, retry_after: float) -> None:
        state = self.of(slug)
        state.retry_after_until = max(state.retry_after_until, self.clock() + retry_after)
        state.probing = False

    def throughput(self, slug: str, completion_tokens: int, seconds: float) -> None:
        if completion_tokens > 0 and seconds > 0:
            state = self.of(slug)
            state.tokens_per_s = _ewma(state.tokens_per_s, completion_tokens / seconds)

    def latency(self, slug: str) -> float | None:
        state = self.providers.get(slug)
        return state.latency_ms if state else None

    def tokens_per_s(self, slug: str) -> float | None:
        state = self.providers.get(slug)
        return state.tokens_per_s if state else None


def _ewma(previous: float | None, value: float) -> float:
    return value if previous is None else previous + EWMA_WEIGHT * (value - previous)


def parse_retry_after(value: str | None, default: float = 1.0, cap: float = 3600.0) -> float:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return min(max(float(value), 0.0), cap)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    import datetime as dt

    seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)
