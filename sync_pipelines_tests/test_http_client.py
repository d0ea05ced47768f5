"""The shared HTTP client's retry rules, on httpx's mock transport (no sockets, no sleeps wasted)."""

import time

import httpx
import pytest

from sync_pipelines.http import HttpSourceClient, RateLimited, parse_retry_after
from sync_pipelines.resilience import SourceAuthError, SourceError


def client(responses, **kwargs):
    """A client whose server answers from `responses` in order (callables get the request)."""
    seen = []

    def handler(request):
        seen.append(request)
        item = responses[min(len(seen), len(responses)) - 1]
        return item(request) if callable(item) else item

    c = HttpSourceClient(
        source="jira",
        connection_id="acme",
        base_url="http://api.test",
        headers={"Authorization": "Bearer secret-token"},
        backoff_s=0.01,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )
    return c, seen


def test_retry_after_is_waited_out():
    c, seen = client([
        httpx.Response(429, headers={"Retry-After": "1"}, json={}),
        httpx.Response(200, json={"ok": 1}),
    ])
    started = time.monotonic()
    assert c.get("/x") == {"ok": 1}
    assert time.monotonic() - started >= 1.0
    assert len(seen) == 2 and c.stats.rate_limited == 1 and c.stats.api_calls == 2


@pytest.mark.parametrize("bad", [
    httpx.Response(500, text="boom"),
    httpx.Response(503, text="busy"),
    httpx.Response(200, content=b'{"truncated": '),
])
def test_transient_failures_retried(bad):
    c, seen = client([bad, bad, httpx.Response(200, json=[1])])
    assert c.get("/x") == [1]
    assert len(seen) == 3 and c.stats.retries == 2


def test_timeouts_retried_then_reported():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    c, seen = client([timeout], max_attempts=3)
    with pytest.raises(SourceError, match=r"jira connection 'acme': GET /x failed after 3 attempts"):
        c.get("/x")
    assert len(seen) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_fail_fast_without_leaking_the_secret(status):
    c, seen = client([httpx.Response(status, json={"message": "no"})])
    with pytest.raises(SourceAuthError) as info:
        c.get("/x?token=secret-token")
    assert len(seen) == 1
    assert "jira connection 'acme'" in str(info.value) and "secret-token" not in str(info.value)


def test_other_client_errors_are_permanent():
    c, seen = client([httpx.Response(400, text="bad jql")])
    with pytest.raises(SourceError, match="HTTP 400: bad jql"):
        c.get("/search")
    assert len(seen) == 1


def test_body_error_hook_can_signal_rate_limits():
    def graphql_errors(body):
        if body.get("errors"):
            raise RateLimited(retry_after=0)

    c, seen = client(
        [httpx.Response(200, json={"errors": [{"extensions": {"code": "too_many_requests"}}]}),
         httpx.Response(200, json={"data": 1})],
        body_error=graphql_errors,
    )
    assert c.post("/graphql", json={}) == {"data": 1}
    assert c.stats.rate_limited == 1


def test_rate_limit_waits_are_bounded():
    c, _ = client([httpx.Response(429, headers={"Retry-After": "0"})], max_rate_limit_waits=2)
    with pytest.raises(SourceError, match="still rate limited after 2 waits"):
        c.get("/x")


def test_client_side_pacing():
    c, seen = client([httpx.Response(200, json={})], rate_per_s=20, burst=1)
    started = time.monotonic()
    for _ in range(5):
        c.get("/x")
    assert time.monotonic() - started >= 4 / 20 * 0.9


def test_parse_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") < 1
