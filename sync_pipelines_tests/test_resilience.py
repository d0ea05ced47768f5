import threading
import time

import pytest

from sync_pipelines.resilience import CallStats, RateLimiter, SourceError, call_with_retries


def test_rate_limiter_paces_to_rate():
    limiter = RateLimiter(rate=20, per=1.0, burst=1)
    started = time.monotonic()
    for _ in range(6):
        limiter.acquire()
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2.0  # 5 waits of 1/20 s after the first token, none much longer


def test_rate_limiter_is_shared_by_threads():
    limiter = RateLimiter(rate=50, per=1.0, burst=1)
    stamps = []
    lock = threading.Lock()

    def worker():
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 20
    assert max(stamps) - min(stamps) >= 19 / 50 * 0.9


def test_disabled_limiter_never_waits():
    limiter = RateLimiter(rate=0)
    assert all(limiter.acquire() == 0 for _ in range(1000))


def test_transient_errors_retried_then_succeed():
    stats = CallStats()
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise TimeoutError("slow")
        return "ok"

    result = call_with_retries(
        flaky, is_transient=lambda e: isinstance(e, TimeoutError), stats=stats, backoff_s=0.01
    )
    assert result == "ok" and len(attempts) == 3 and stats.retries == 2


def test_permanent_error_not_retried_and_described():
    stats = CallStats()
    attempts = []

    def denied():
        attempts.append(1)
        raise PermissionError("401")

    with pytest.raises(SourceError, match="source x: 401"):
        call_with_retries(
            denied,
            is_transient=lambda e: isinstance(e, TimeoutError),
            stats=stats,
            describe=lambda e: SourceError(f"source x: {e}"),
        )
    assert len(attempts) == 1 and stats.retries == 0


def test_gives_up_after_max_attempts():
    stats = CallStats()
    with pytest.raises(TimeoutError):
        call_with_retries(
            lambda: (_ for _ in ()).throw(TimeoutError("down")),
            is_transient=lambda e: True,
            stats=stats,
            max_attempts=3,
            backoff_s=0.001,
        )
    assert stats.retries == 2
