"""Slack client pacing (Slack rate-limits per method, at the method's tier rate) and how it
sorts Slack's errors (mostly answered with 200) into errors.py's verdicts."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sync_pipelines import resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourcePermanentError
from sync_pipelines.sources.slack.client import SlackResource


def client(options=None, **resource):
    connection = Connection("acme", "slack", credentials={"token": "SLACK_T"}, options=options or {})
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


# --- error handling, against a scripted Web API -------------------------------------------


class ScriptedSlack:
    """A local Web API answering queued (status, content type, body), the last one forever."""

    def __init__(self, *answers: tuple[int, str, bytes]):
        self.answers = list(answers)
        self.paths: list[str] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scripted.paths.append(self.path)
                status, content_type, body = (
                    scripted.answers.pop(0) if len(scripted.answers) > 1 else scripted.answers[0]
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
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
