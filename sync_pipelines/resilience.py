"""The shared client layer every source uses: rate limiting, retry with backoff, call statistics.

`call_with_retries` acts on the one verdict `errors.classify` gives each failure: transient
failures (5xx, 408/409/425, timeouts, dropped connections) are retried with exponential backoff
and full jitter, malformed bodies a few times, 429s wait out the server's `Retry-After`, and
authentication errors and other 4xx fail at once with a message naming the source and the
connection.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sync_pipelines.errors import (  # re-exported: the sources import them from here
    MalformedResponseError,
    SourceAuthError,
    SourceError,
    SourcePermanentError,
    Verdict,
    classify,
    retry_after_of,
)

__all__ = [
    "CallStats",
    "MalformedResponseError",
    "RateLimiter",
    "SourceAuthError",
    "SourceError",
    "SourcePermanentError",
    "call_with_retries",
    "rate_limit_wait",
]

T = TypeVar("T")
_sleep = time.sleep  # the one place retries sleep; tests replace it to record the waits


class RateLimiter:
    """Token bucket shared by every thread of one connection: `rate` calls per `per` seconds.

    `acquire` blocks only as long as the bucket needs to refill, so callers never sleep blindly;
    a `rate` of 0 or less disables the limiter.
    """

    def __init__(self, rate: float, per: float = 1.0, burst: float | None = None):
        self.rate = rate
        self.per = per
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self._held_until = 0.0  # monotonic time before which no call goes out (a 429's hold)

    def hold(self, seconds: float) -> None:
        """Hold every call of the connection for `seconds` (a 429's Retry-After applies to
        the whole token, not to the one thread that received it); works with pacing off."""
        with self._lock:
            self._held_until = max(self._held_until, time.monotonic() + seconds)

    def acquire(self) -> float:
        """Take one token, waiting if needed; returns the seconds waited."""
        with self._lock:
            held = self._held_until - time.monotonic()
        waited = 0.0
        if held > 0:
            time.sleep(held)
            waited = held
        if self.rate <= 0:
            return waited
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(
                    self.capacity, self._tokens + (now - self._updated) * self.rate / self.per
                )
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                delay = (1 - self._tokens) * self.per / self.rate
            time.sleep(delay)
            waited += delay


@dataclass
class CallStats:
    """Thread-safe counters reported as materialization metadata."""

    api_calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    throttle_wait_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_metadata(self) -> dict[str, float]:
        return {
            "api_calls": self.api_calls,
            "rate_limited_429": self.rate_limited,
            "retries": self.retries,
            "throttle_wait_s": round(self.throttle_wait_s, 3),
        }


def rate_limit_wait(
    retry_after: float | None,
    waits: int,
    *,
    max_backoff_s: float = 30.0,
    max_retry_after_s: float = 300.0,
) -> float:
    """How long the `waits`-th 429 in a row holds off: the server's Retry-After (capped), or
    exponential backoff when it sent none, plus up to 0.25 s of jitter so a connection's
    threads do not return in step. The one rule every client, SDK adapter and handler uses."""
    wait = min(max_backoff_s, 2.0 ** (waits - 1)) if retry_after is None else retry_after
    return min(wait, max_retry_after_s) + random.uniform(0, 0.25)


def call_with_retries(
    fn: Callable[[], T],
    *,
    stats: CallStats,
    describe: Callable[[BaseException, Verdict, int], BaseException] | None = None,
    max_attempts: int = 6,
    max_malformed_attempts: int = 3,
    max_rate_limit_waits: int = 10,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    max_retry_after_s: float = 300.0,
) -> T:
    """Run `fn`, acting on `errors.classify`'s verdict on each failure.

    TRANSIENT: up to `max_attempts` attempts; MALFORMED: up to `max_malformed_attempts` (a
    login page does not go away in seconds); both wait exponential backoff with full jitter,
    or the server's Retry-After when it sent one. RATE_LIMITED: the Retry-After (capped, plus
    jitter), at most `max_rate_limit_waits` times (0 for clients whose SDK or adapter waits out
    429s itself). AUTH, PERMANENT, UNEXPECTED: at once. The last failure goes through
    `describe(exc, verdict, attempts)`, e.g. into a SourceError naming the source, the
    connection and the request.
    """
    budget = {
        Verdict.TRANSIENT: max_attempts - 1,
        Verdict.MALFORMED: max_malformed_attempts - 1,
        Verdict.RATE_LIMITED: max_rate_limit_waits,
    }
    failures: Counter[Verdict] = Counter()
    while True:
        try:
            return fn()
        except Exception as exc:
            verdict = classify(exc)
            failures[verdict] += 1
            count = failures[verdict]
            if count > budget.get(verdict, 0):
                if describe is None:
                    raise
                # The description says what failed; only a surprise keeps its cause (an SDK's
                # exception may quote the request's headers).
                cause = exc if verdict is Verdict.UNEXPECTED else None
                raise describe(exc, verdict, sum(failures.values())) from cause
            asked = retry_after_of(exc)
            if verdict is Verdict.RATE_LIMITED:
                wait = rate_limit_wait(
                    asked, count, max_backoff_s=max_backoff_s, max_retry_after_s=max_retry_after_s
                )
                stats.add(rate_limited=1, retries=1, throttle_wait_s=wait)
            else:
                ceiling = min(max_backoff_s, backoff_s * 2 ** (count - 1))
                wait = random.uniform(0, ceiling) if asked is None else asked
                wait = min(wait, max_retry_after_s)
                stats.add(retries=1)
            _sleep(wait)
