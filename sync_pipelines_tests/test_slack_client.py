"""Slack client pacing (Slack rate-limits per method, at the method's tier rate) and how it
sorts Slack's errors (mostly answered with 200) into errors.py's verdicts."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sync_pipelines import resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourcePermanentError
from sync_pipelines.sources.slack import client as slack_client
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines.sources.slack.sync import SlackOptions


def client(options=None, **resource):
    connection = Connection(
        "acme", "slack", credentials={"token": "SLACK_T"}, options=options or {}
    )
    return SlackResource(base_url="http://127.0.0.1:9/api/", **resource).client_for(connection)


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("SLACK_T", "xoxb-test")


def test_each_method_has_its_own_bucket_at_its_tier_rate():
    c = client()
    history, replies = c._limiter("conversations.history"), c._limiter("conversations.replies")
    assert history is not replies and history is c._limiter("conversations.history")
    assert history.rate == 50 and c._limiter("users.info").rate == 100
    assert c._limiter("conversations.list").rate == 20


def test_connection_options_override_and_disable_pacing():
    c = client({"tier_limits_per_minute": {"tier3": 0, "tier4": 500}})
    assert c._limiter("conversations.history") is None
    assert c._limiter("users.info").rate == 500
    assert c._limiter("conversations.list").rate == 20


def test_unknown_tier_is_named():
    with pytest.raises(ValueError, match=r"unknown rate tiers \['tier9'\]"):
        client({"tier_limits_per_minute": {"tier9": 1}})


def test_slack_rate_per_s_caps_the_whole_connection_over_the_tiers(monkeypatch):
    assert client()._connection_limiter.rate == 0  # Slack documents per-method tiers only
    monkeypatch.setenv("SLACK_RATE_PER_S", "2")
    assert client()._connection_limiter.rate == 2
    assert client(rate_per_s=0.5)._connection_limiter.rate == 0.5


# --- settings: read from the environment when a client is built ------------------------------


def api_host(resource: SlackResource, base_url: str | None = None) -> str:
    connection = Connection("acme", "slack", credentials={"token": "SLACK_T"}, base_url=base_url)
    c = resource.client_for(connection)
    return f"{c._api.scheme}://{c._api.netloc}{c._api.path}"


def test_a_resource_configured_with_only_page_size_still_uses_slack_base_url(monkeypatch):
    monkeypatch.setenv("SLACK_BASE_URL", "http://sandbox.test:8080/slack/api")
    assert api_host(SlackResource(page_size=50)) == "http://sandbox.test:8080/slack/api/"


def test_base_url_precedence_connection_resource_env_default(monkeypatch):
    assert api_host(SlackResource()) == "https://slack.com/api/"
    monkeypatch.setenv("SLACK_BASE_URL", "http://env.test/api/")
    assert api_host(SlackResource()) == "http://env.test/api/"
    resource = SlackResource(base_url="http://resource.test/api/")
    assert api_host(resource) == "http://resource.test/api/"
    assert api_host(resource, "http://connection.test/api/") == "http://connection.test/api/"


def test_defaults_stay_slacks_own():
    c = SlackResource().client_for(Connection("acme", "slack", credentials={"token": "SLACK_T"}))
    assert c.page_size == 999 and c.max_attempts == 6
    assert SlackResource().max_rate_limit_waits == 8 and SlackResource().timeout_s == 30


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"page_size": 1000}, "SlackResource.page_size"),
        ({"timeout_s": 0}, "SlackResource.timeout_s"),
    ],
)
def test_out_of_range_settings_are_named(settings, named):
    with pytest.raises(ValueError, match=named):
        client(**settings)


# --- connection options ------------------------------------------------------------------------


def test_options_are_parsed_once_with_channel_names_as_given_or_with_hash():
    options = SlackOptions.from_connection(
        {"channels": ["#general", "C123"], "lookback_days": 2, "join_public": False}, "slack"
    )
    assert options.channels == ("general", "C123")
    assert options.lookback_days == 2.0 and options.join_public is False
    assert SlackOptions.from_connection(None, "slack").lookback_days == 7.0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"lookback_days": -1}, "slack option 'lookback_days'"),
        ({"channels": "general"}, "slack option 'channels': must be a list of channel names"),
        ({"tier_limits_per_minute": {"tier9": 1}}, "slack option 'tier_limits_per_minute'"),
        ({"chanels": ["general"]}, "unknown slack option 'chanels'"),
    ],
)
def test_bad_options_are_named(options, named):
    with pytest.raises(ValueError, match=named):
        SlackOptions.from_connection(options, "slack")


# --- error handling, against a scripted Web API -------------------------------------------


class ScriptedSlack:
    """A local Web API answering queued (status, content type, body, *(header, value)), the
    last one forever."""

    def __init__(self, *answers: tuple[int, str, bytes]):
        self.answers = list(answers)
        self.paths: list[str] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scripted.paths.append(self.path)
                status, content_type, body, *headers = (
                    scripted.answers.pop(0) if len(scripted.answers) > 1 else scripted.answers[0]
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/api/"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def slack_json(**body) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(body).encode()


LOGIN_PAGE = (200, "text/html", b"<!doctype html><html><body>Sign in with SSO xoxb-test</body>")
GATEWAY_PAGE = (502, "text/html", b"<html><body>502 Bad Gateway</body></html>")
OK = slack_json(ok=True, channels=[])


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    servers = []

    def start(*answers):
        servers.append(ScriptedSlack(*answers))
        connection = Connection("acme", "slack", credentials={"token": "SLACK_T"},
                                base_url=servers[-1].base_url)
        return servers[-1], SlackResource().client_for(connection)

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("first", [slack_json(ok=False, error="internal_error"), GATEWAY_PAGE])
def test_server_side_errors_are_retried(scripted, first):
    server, c = scripted(first, OK)
    assert c.call("conversations.list")["ok"] is True
    assert len(server.paths) == 2 and c.stats.retries == 1


def test_errors_that_will_not_change_fail_at_once_naming_the_call(scripted):
    server, c = scripted(slack_json(ok=False, error="channel_not_found"), OK)
    with pytest.raises(SourcePermanentError) as caught:
        c.call("conversations.history", channel="C1")
    message = str(caught.value)
    assert message.startswith(
        "slack connection 'acme': POST /api/conversations.history on 127.0.0.1: HTTP 200"
    )
    assert "channel_not_found" in message and len(server.paths) == 1


def test_a_login_page_is_retried_a_few_times_then_named(scripted):
    server, c = scripted(LOGIN_PAGE)
    with pytest.raises(SourcePermanentError) as caught:
        c.call("conversations.list")
    message = str(caught.value)
    assert len(server.paths) == 3 and "malformed answer after 3 attempts" in message
    assert "HTTP 200 (text/html" in message and "Sign in with SSO" in message
    assert "xoxb-test" not in message


def test_a_page_saying_has_more_without_a_cursor_is_truncated_retried_then_named(scripted):
    truncated = slack_json(ok=True, messages=[{"ts": "1.000001"}], has_more=True)
    last = slack_json(ok=True, messages=[{"ts": "1.000002"}], has_more=False)
    server, c = scripted(truncated, last)
    assert [m["ts"] for m in c.paginate("conversations.history", "messages")] == ["1.000002"]
    assert c.stats.retries == 1

    server, c = scripted(truncated)
    with pytest.raises(SourcePermanentError, match="has_more but no next_cursor"):
        list(c.paginate("conversations.history", "messages", channel="C1"))
    assert len(server.paths) == 3


RATE_LIMITED = (
    429, "application/json", b'{"ok": false, "error": "ratelimited"}', ("Retry-After", "7")
)


def test_429s_wait_by_the_shared_rule_and_hold_the_whole_connection(scripted, monkeypatch):
    asked = []

    def wait(retry_after, waits):
        asked.append((retry_after, waits))
        return 0.1

    monkeypatch.setattr(slack_client, "rate_limit_wait", wait)
    server, c = scripted(RATE_LIMITED, RATE_LIMITED, OK)
    held = []
    hold = c._connection_limiter.hold
    monkeypatch.setattr(c._connection_limiter, "hold", lambda s: held.append(s) or hold(s))
    started = time.monotonic()
    assert c.call("conversations.list")["ok"] is True
    assert asked == [(7.0, 1), (7.0, 2)] and held == [0.1, 0.1]
    assert time.monotonic() - started >= 0.2
    assert c.stats.throttle_wait_s == pytest.approx(0.2, abs=0.01)
    assert c.stats.rate_limited == 2 and len(server.paths) == 3
