"""The shared HTTP client's retry rules, on httpx's mock transport (no sockets, no real sleeps)."""

import time

import httpx
import pytest

from sync_pipelines import resilience
from sync_pipelines.errors import RateLimited, SourcePermanentError, parse_retry_after
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.resilience import SourceAuthError, SourceError

LOGIN_PAGE = b"<!doctype html><html><body>Sign in to continue. secret-token</body></html>"


@pytest.fixture(autouse=True)
def waits(monkeypatch) -> list[float]:
    """The retry layer's sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(resilience, "_sleep", slept.append)
    return slept


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


def test_retry_after_is_waited_out(waits):
    c, seen = client([
        httpx.Response(429, headers={"Retry-After": "7"}, json={}),
        httpx.Response(200, json={"ok": 1}),
    ])
    assert c.get("/x") == {"ok": 1}
    assert len(waits) == 1 and 7 <= waits[0] <= 7.25  # plus jitter
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


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
def test_statuses_that_can_change_are_retried(status):
    c, seen = client([httpx.Response(status, json={}), httpx.Response(200, json={"ok": 1})])
    assert c.get("/x") == {"ok": 1}
    assert len(seen) == 2 and c.stats.retries == 1


def test_timeouts_retried_then_reported():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    c, seen = client([timeout], max_attempts=3)
    with pytest.raises(SourceError, match=r"jira connection 'acme': GET /x on api.test: failed "
                                          r"after 3 attempts: ReadTimeout") as caught:
        c.get("/x")
    assert len(seen) == 3 and not isinstance(caught.value, SourcePermanentError)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_fail_fast_without_leaking_the_secret(status):
    c, seen = client([httpx.Response(status, json={"message": "no"})])
    with pytest.raises(SourceAuthError) as info:
        c.get("/x?token=secret-token")
    assert len(seen) == 1
    assert "jira connection 'acme'" in str(info.value) and "secret-token" not in str(info.value)


@pytest.mark.parametrize("status", [400, 404, 405, 410, 422])
def test_answers_that_will_not_change_fail_at_once_naming_the_request(status):
    c, seen = client([httpx.Response(status, json={"error": "no such thing", "t": "secret-token"})])
    with pytest.raises(SourcePermanentError) as caught:
        c.get("/rest/items/7?token=secret-token")
    message = str(caught.value)
    assert len(seen) == 1 and c.stats.retries == 0
    assert message.startswith(f"jira connection 'acme': GET /rest/items/7 on api.test: "
                              f"HTTP {status}:")
    assert "no such thing" in message and "secret-token" not in message and "?" not in message


def test_html_login_page_with_200_is_retried_a_few_times_then_named():
    page = httpx.Response(200, content=LOGIN_PAGE, headers={"content-type": "text/html"})
    c, seen = client([page])
    with pytest.raises(SourcePermanentError) as caught:
        c.get("/4/worklogs")
    message = str(caught.value)
    assert len(seen) == 3 and c.stats.retries == 2
    assert "GET /4/worklogs on api.test" in message and "after 3 attempts" in message
    assert "HTTP 200 (text/html)" in message and "'<!doctype html><html><body>Sign in" in message
    assert "secret-token" not in message


def test_html_page_then_json_succeeds():
    page = httpx.Response(200, content=LOGIN_PAGE, headers={"content-type": "text/html"})
    c, seen = client([page, httpx.Response(200, json={"ok": 1})])
    assert c.get("/x") == {"ok": 1}
    assert len(seen) == 2


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
    with pytest.raises(SourceError, match="still rate limited after 3 attempts"):
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
