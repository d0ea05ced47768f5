"""Slack client pacing: Slack rate-limits per method, at the method's tier rate."""

import pytest

from sync_pipelines.connections import Connection
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
