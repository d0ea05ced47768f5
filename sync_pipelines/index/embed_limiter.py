"""Pace embedding requests sent from several threads within the provider's limits.

Embedding APIs limit requests per minute and tokens per minute per key, and say where a key
stands in every answer (`x-ratelimit-limit-*`, `x-ratelimit-remaining-*`,
`x-ratelimit-reset-*`) and, once over, in a 429's `Retry-After`. One request at a time leaves
most of that budget unused; many at once without pacing turns it into 429 storms. The
limiter lets up to `max_in_flight` requests go at once, each only when a token bucket of
requests and one of tokens (per minute, learned from the headers when not configured) hold
enough, and holds every thread while a 429 or an exhausted budget says to wait. The first
request goes alone (and again after a failure, until one succeeds): its answer teaches the
limits before the others go, and a rejected key costs one request, not `max_in_flight`.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_HOLD_S = 300.0


def parse_reset(value: str | None) -> float | None:
    """Seconds in an `x-ratelimit-reset-*` value ("1s", "6m0s", "20ms", "0.5"), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class _MinuteBucket:
    """`limit` units per minute, refilled continuously; unlimited while `limit` is None."""

    def __init__(self, limit: float | None, now: float):
        self.limit = limit
        self.level = limit or 0.0
        self.updated = now

    def refill(self, now: float) -> None:
        if self.limit is not None:
            self.level = min(self.limit, self.level + (now - self.updated) * self.limit / 60.0)
        self.updated = now

    def wait(self, amount: float) -> float:
        """Seconds until `amount` fits (an amount over the whole minute waits for a full
        bucket: it could never fit otherwise)."""
        if self.limit is None:
            return 0.0
        need = min(amount, self.limit) - self.level
        return max(0.0, need * 60.0 / self.limit) if self.limit > 0 else math.inf

    def take(self, amount: float) -> None:
        if self.limit is not None:
            self.level -= min(amount, self.limit)

    def learn(self, limit: float | None, remaining: float | None, now: float) -> None:
        """The server's word wins: its limit, and never more left than it says remains."""
        self.refill(now)
        if limit is not None and limit > 0 and limit != self.limit:
            self.level = limit if self.limit is None else self.level * limit / self.limit
            self.limit = limit
        if remaining is not None and self.limit is not None:
            self.level = min(self.level, remaining)


@dataclass
class LimiterStats:
    """How the requests went out: the most and the time-weighted mean in flight while any
    was, and the seconds threads waited for the budget."""

    requests: int = 0
    max_in_flight: int = 0
    mean_in_flight: float = 0.0
    wait_s: float = 0.0
    holds: int = 0  # 429s and exhausted budgets that held every thread


class EmbedLimiter:
    """Shared by the threads of one updater; `request(tokens)` wraps each embedding call."""

    def __init__(
        self,
        max_in_flight: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        probe_first: bool = True,
    ):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self._now = monotonic
        now = monotonic()
        self._requests = _MinuteBucket(requests_per_minute, now)
        self._tokens = _MinuteBucket(tokens_per_minute, now)
        self._held_until = 0.0
        self._in_flight = 0
        self._proven = not probe_first  # a request succeeded since the last failure
        self._busy_s = 0.0
        self._area = 0.0
        self._changed = now
        self._cond = threading.Condition()
        self.stats = LimiterStats()

    @contextmanager
    def request(self, tokens: int) -> Iterator[None]:
        self.acquire(tokens)
        succeeded = False
        try:
            yield
            succeeded = True
        finally:
            self.release(succeeded)

    def delay(self, tokens: int) -> float:
        """Seconds before a request of `tokens` may go (inf: wait for one in flight to end)."""
        with self._cond:
            return self._delay(tokens, self._now())

    def acquire(self, tokens: int) -> None:
        started = self._now()
        with self._cond:
            while True:
                now = self._now()
                wait = self._delay(tokens, now)
                if wait <= 0:
                    break
                self._cond.wait(None if math.isinf(wait) else wait)
            self._requests.take(1)
            self._tokens.take(tokens)
            self._gauge(now, +1)
            self.stats.requests += 1
            self.stats.wait_s += now - started

    def release(self, succeeded: bool = True) -> None:
        with self._cond:
            self._proven = succeeded
            self._gauge(self._now(), -1)
            self._cond.notify_all()

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from one answer's headers (any status): limits, what remains, 429 holds."""
        now = self._now()
        get = headers.get
        with self._cond:
            for bucket, kind in ((self._requests, "requests"), (self._tokens, "tokens")):
                remaining = _number(get(f"x-ratelimit-remaining-{kind}"))
                bucket.learn(_number(get(f"x-ratelimit-limit-{kind}")), remaining, now)
                reset = parse_reset(get(f"x-ratelimit-reset-{kind}"))
                if remaining is not None and remaining <= 0 and reset:
                    self._hold(now, reset)
            if status == 429:
                after = _number(get("retry-after-ms"))
                after = after / 1000 if after is not None else _number(get("retry-after"))
                self._hold(now, after if after is not None else 1.0)
            self._cond.notify_all()

    def _hold(self, now: float, seconds: float) -> None:
        self._held_until = max(self._held_until, now + min(seconds, _MAX_HOLD_S))
        self.stats.holds += 1

    def _delay(self, tokens: int, now: float) -> float:
        if self._in_flight >= (self.max_in_flight if self._proven else 1):
            return math.inf
        self._requests.refill(now)
        self._tokens.refill(now)
        return max(self._held_until - now, self._requests.wait(1), self._tokens.wait(tokens))

    def _gauge(self, now: float, step: int) -> None:
        """Integrate requests in flight over the time any is in flight."""
        if self._in_flight:
            self._area += self._in_flight * (now - self._changed)
            self._busy_s += now - self._changed
        self._in_flight += step
        self._changed = now
        self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
        if self._busy_s > 0:
            self.stats.mean_in_flight = self._area / self._busy_s
