"""The embedding limiter: requests and tokens per minute, what the server's x-ratelimit-*
headers and 429s say, and at most `max_in_flight` requests at once (a fake clock: no test
here waits on real time)."""

from __future__ import annotations

import math
import threading

import pytest

from sync_pipelines.index.embed_limiter import EmbedLimiter, parse_reset


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "value, seconds",
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5", 0.5)],
)
def test_reset_durations_parse_like_openai_sends_them(value, seconds):
    assert parse_reset(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "5 minutes", "1x"])
def test_unreadable_resets_are_ignored(value):
    assert parse_reset(value) is None


def test_requests_per_minute_pace_the_requests():
    clock = FakeClock()
    limiter = EmbedLimiter(max_in_flight=100, requests_per_minute=60, monotonic=clock)
    for _ in range(60):  # a full bucket: a minute's worth at once
        assert limiter.delay(10) == 0
        limiter.acquire(10)
        limiter.release()
    assert limiter.delay(10) == pytest.approx(1.0)  # then one a second
    clock.now += 0.5
    assert limiter.delay(10) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.delay(10) == 0


def test_tokens_per_minute_pace_big_requests_and_cap_oversized_ones():
    clock = FakeClock()
    limiter = EmbedLimiter(max_in_flight=100, tokens_per_minute=6000, monotonic=clock)
    limiter.acquire(6000)
    limiter.release()
    assert limiter.delay(600) == pytest.approx(6.0)  # 100 tokens a second refill
    clock.now += 60
    # More than a minute's budget can never fit: it waits for a full bucket, not forever.
    assert limiter.delay(10_000) == 0


def test_headers_teach_the_limits_and_an_exhausted_budget_holds_everyone():
    clock = FakeClock()
    limiter = EmbedLimiter(max_in_flight=8, monotonic=clock)
    assert limiter.delay(1000) == 0  # nothing known: no pacing
    limiter.observe(
        200,
        {
            "x-ratelimit-limit-requests": "3000",
            "x-ratelimit-remaining-requests": "2999",
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "500",
            "x-ratelimit-reset-tokens": "59.5s",
        },
    )
    # 500 tokens left of 60,000 a minute (1,000 a second): 1,000 more take half a second.
    assert limiter.delay(1000) == pytest.approx(0.5)
    limiter.observe(
        200,
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
    )
    assert limiter.delay(1) == pytest.approx(2.0)
    assert limiter.stats.holds == 1


@pytest.mark.parametrize(
    "headers, hold", [({"retry-after": "3"}, 3.0), ({"retry-after-ms": "250"}, 0.25), ({}, 1.0)]
)
def test_a_429_holds_every_thread_for_its_retry_after(headers, hold):
    clock = FakeClock()
    limiter = EmbedLimiter(max_in_flight=8, monotonic=clock)
    limiter.observe(429, headers)
    assert limiter.delay(1) == pytest.approx(hold)
    clock.now += hold
    assert limiter.delay(1) == 0


def test_the_first_request_goes_alone_until_one_succeeds():
    limiter = EmbedLimiter(max_in_flight=4)
    limiter.acquire(1)
    assert math.isinf(limiter.delay(1)), "the others wait for the first answer"
    limiter.release(succeeded=False)  # e.g. a rejected key: still one at a time
    limiter.acquire(1)
    assert math.isinf(limiter.delay(1))
    limiter.release()
    for _ in range(4):
        assert limiter.delay(1) == 0
        limiter.acquire(1)
    assert math.isinf(limiter.delay(1))


def test_no_more_than_max_in_flight_go_at_once():
    limiter = EmbedLimiter(max_in_flight=2, probe_first=False)
    limiter.acquire(1)
    limiter.acquire(1)
    assert math.isinf(limiter.delay(1))
    third = threading.Thread(target=limiter.acquire, args=(1,))
    third.start()
    third.join(timeout=0.2)
    assert third.is_alive(), "a third request waits while two are in flight"
    limiter.release()
    third.join(timeout=10)
    assert not third.is_alive()
    limiter.release()
    limiter.release()
    assert limiter.stats.max_in_flight == 2 and limiter.stats.requests == 3


def test_the_mean_in_flight_is_weighted_by_time():
    clock = FakeClock()
    limiter = EmbedLimiter(max_in_flight=4, monotonic=clock, probe_first=False)
    limiter.acquire(1)
    clock.now += 1  # one in flight for a second
    limiter.acquire(1)
    clock.now += 3  # two for three seconds
    limiter.release()
    limiter.release()
    assert limiter.stats.mean_in_flight == pytest.approx((1 * 1 + 2 * 3) / 4)
    assert limiter.stats.max_in_flight == 2


def test_max_in_flight_must_be_positive():
    with pytest.raises(ValueError, match="max_in_flight must be at least 1"):
        EmbedLimiter(max_in_flight=0)
