"""The shared client layer every source uses: rate limiting, retry with backoff, call statistics.

Retries follow one rule everywhere: transient failures (5xx, timeouts, dropped connections,
malformed bodies) are retried with exponential backoff and full jitter; 429s wait out the
server's `Retry-After`; authentication and permission errors are never retried, they fail the
run at once with a message naming the source and the connection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

T = TypeVar("T")


class SourceError(RuntimeError):
    """A source call failed for good (after retries); the message names source and connection."""


class SourceAuthError(SourceError):
    """Credentials were rejected. Never retried: retrying a bad token only burns rate limit."""


class MalformedResponseError(SourceError):
    """The API answered with something that is not the documented shape. Treated as transient."""


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

    def acquire(self) -> float:
        """Take one token, waiting if needed; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
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


def call_with_retries(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    stats: CallStats,
    max_attempts: int = 6,
    backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
    describe: Callable[[BaseException], BaseException] | None = None,
) -> T:
    """Run `fn`, retrying transient failures with exponential backoff and full jitter.

    `describe` turns the final exception into the one raised (e.g. a SourceError naming the
    source and connection); permanent errors go through it at once.
    """

    def before_sleep(state: RetryCallState) -> None:
        stats.add(retries=1)

    retrying = Retrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait_random_exponential(multiplier=backoff_s, max=max_backoff_s),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        if describe is None:
            raise
        raise describe(exc) from exc
