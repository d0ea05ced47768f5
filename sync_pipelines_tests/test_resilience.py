import threading
import time

import pytest

from sync_pipelines import resilience
from sync_pipelines.errors import MalformedResponseError, RateLimited, SourcePermanentError
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


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The retry layer's sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(resilience, "_sleep", slept.append)
    return slept


def failing(*errors: BaseException, result="ok"):
    """A call that raises `errors` in turn, then returns `result`; `.attempts` counts calls."""

    def call():
        call.attempts += 1
        if call.attempts <= len(errors):
            raise errors[call.attempts - 1]
        return result

    call.attempts = 0
    return call


def test_transient_errors_retried_then_succeed(waits):
    stats = CallStats()
    flaky = failing(TimeoutError("slow"), ConnectionResetError("reset"))
    assert call_with_retries(flaky, stats=stats, backoff_s=0.01) == "ok"
    assert flaky.attempts == 3 and stats.retries == 2 and len(waits) == 2


def test_backoff_is_exponential_with_full_jitter(waits):
    call_with_retries(
        failing(*[TimeoutError()] * 5), stats=CallStats(), backoff_s=1.0, max_backoff_s=4.0
    )
    ceilings = [1, 2, 4, 4, 4]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(waits, ceilings, strict=True))


def test_permanent_error_not_retried_and_described(waits):
    stats = CallStats()
    denied = failing(SourcePermanentError("404"))

    def describe(exc, verdict, attempts):
        return SourceError(f"source x: {exc} ({verdict.value}, {attempts} attempt)")

    with pytest.raises(SourceError, match=r"source x: 404 \(permanent, 1 attempt\)"):
        call_with_retries(denied, stats=stats, describe=describe)
    assert denied.attempts == 1 and stats.retries == 0 and waits == []


def test_gives_up_after_max_attempts(waits):
    stats = CallStats()
    down = failing(*[TimeoutError("down")] * 10)
    with pytest.raises(TimeoutError):
        call_with_retries(down, stats=stats, max_attempts=3, backoff_s=0.001)
    assert down.attempts == 3 and stats.retries == 2


def test_malformed_bodies_get_fewer_attempts_than_outages(waits):
    garbage = failing(*[MalformedResponseError("not JSON")] * 10)
    with pytest.raises(MalformedResponseError):
        call_with_retries(garbage, stats=CallStats(), max_attempts=6)
    assert garbage.attempts == 3


def test_rate_limits_wait_the_server_s_retry_after(waits):
    stats = CallStats()
    limited = failing(RateLimited(retry_after=12), RateLimited(retry_after=None))
    assert call_with_retries(limited, stats=stats, max_retry_after_s=10) == "ok"
    assert 10 <= waits[0] <= 10.25  # capped, plus jitter
    assert 2 <= waits[1] <= 2.25  # no hint: 1, 2, 4... seconds
    assert stats.rate_limited == 2 and stats.throttle_wait_s == pytest.approx(sum(waits))


def test_clients_that_wait_out_429s_themselves_give_up_at_once(waits):
    limited = failing(RateLimited(retry_after=1))
    with pytest.raises(RateLimited):
        call_with_retries(limited, stats=CallStats(), max_rate_limit_waits=0)
    assert limited.attempts == 1 and waits == []


def test_the_description_of_an_sdk_error_drops_its_cause(waits):
    class SdkError(Exception):
        status_code = 404  # its text would quote the request headers

    def describe(exc, verdict, attempts):
        return SourcePermanentError("described")

    with pytest.raises(SourcePermanentError) as caught:
        call_with_retries(failing(SdkError("Authorization: Basic c2VjcmV0")), stats=CallStats(),
                          describe=describe)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
