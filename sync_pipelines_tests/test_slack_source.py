"""Real materializations of the `slack` asset against the Slack emulator, checked against the
sandbox company's ground truth."""

import re
import time
from datetime import timedelta

import pytest
from dagster import DagsterEventType

from sync_pipelines import clock
from sync_pipelines.documents import DocumentFiles
from sync_pipelines.sources.slack.sync import SKIPPED_SUBTYPES
from sync_pipelines_tests.conftest import day, today

pytestmark = pytest.mark.integration

MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")


def expected_documents(company, first_day: int, last_day: int) -> dict[str, str]:
    """doc_id -> text for every readable message of top-level days [first, last] (UTC, offsets
    from today), with each thread's replies (replies belong to their parent's day)."""
    start = (today() + timedelta(days=first_day)).timestamp()
    end = (today() + timedelta(days=last_day + 1)).timestamp()
    now = clock.now_epoch()
    docs = {}

    def add(channel, msg):
        text = (msg.text or "").strip()
        if msg.subtype in SKIPPED_SUBTYPES or not text:
            return
        text = MENTION.sub(lambda m: "@" + company.user(m.group(1)).name, text)
        docs[f"slack:acme:{channel.id}:{msg.ts}"] = text

    for channel in company.chat_channels():
        if channel.is_archived or not company.bot_can_read(channel):
            continue
        for msg in company.channel_messages(channel.id):
            if start <= float(msg.ts) < end:
                add(channel, msg)
                for reply in company.thread_replies(channel.id, msg.ts):
                    if float(reply.ts) < now:
                        add(channel, reply)
    return docs


def by_id(docs):
    return {d.doc_id: d for d in docs}


def test_range_run_matches_ground_truth(harness, company):
    result = harness.sync_slack([day(-3), day(0)])
    docs = by_id(harness.documents(result))
    expected = expected_documents(company, -3, 0)
    assert len(expected) > 500
    assert {k: d.text for k, d in docs.items()} == expected

    meta = harness.metadata(result, "slack")
    assert meta["mode"] == "full"
    assert meta["run_documents_written"] == len(expected)
    visible = [c for c in company.chat_channels() if not c.is_archived and company.bot_can_read(c)]
    assert meta["run_channels_read"] == len(visible)
    # page_size=50 in the harness: every channel takes several history pages, none is capped.
    history_calls = harness.sandbox.knobs.calls["conversations.history"]
    assert history_calls > len(visible)
    assert meta["run_api_calls"] >= history_calls
    assert meta["high_water_mark"] <= clock.now_epoch()
    for key in ("rate_limited_429", "retries", "duration_s", "peak_memory_mb"):
        assert f"run_{key}" in meta


def test_document_metadata_and_access(harness, company):
    docs = harness.documents(harness.sync_slack([day(-3), day(0)]))
    private = {c.id: c for c in company.chat_channels() if c.is_private}
    seen_private = seen_reply = False
    for doc in docs:
        meta = doc.metadata
        channel = company.channel(meta["channel_id"])
        assert meta["channel_name"] == channel.name
        assert doc.timestamp_epoch == float(meta["ts"])
        assert doc.url.endswith(f"/archives/{channel.id}/p{meta['ts'].replace('.', '')}") or (
            meta["is_reply"] and f"thread_ts={meta['thread_ts']}" in doc.url
        )
        if meta["user_id"]:
            assert meta["user_name"] == company.user(meta["user_id"]).name == doc.author
        if channel.id in private:
            seen_private = True
            emails = sorted(
                company.user(u).email for u in channel.members if company.user(u).email
            )
            assert list(doc.access) == emails and "all" not in doc.access
        else:
            assert list(doc.access) == ["all"]
        if meta["is_reply"]:
            seen_reply = True
            assert meta["thread_ts"] and meta["thread_ts"] != meta["ts"]
    assert seen_private and seen_reply


def test_archived_and_unreadable_channels_skipped_and_public_joined(harness, company):
    docs = harness.documents(harness.sync_slack([day(-3), day(0)]))
    channel_ids = {d.metadata["channel_id"] for d in docs}
    for channel in company.chat_channels():
        if channel.is_archived or not company.bot_can_read(channel):
            assert channel.id not in channel_ids
    assert harness.sandbox.knobs.calls["conversations.join"] >= 1


def test_channel_allow_list(harness, company, sandbox):
    from sync_pipelines_tests.conftest import GOOD_TOKEN_ENV

    general = next(c for c in company.chat_channels() if not c.is_private and not c.is_archived)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: slack\n"
        f"    base_url: {sandbox.urls['slack']}\n"
        f"    credentials: {{token: {GOOD_TOKEN_ENV}}}\n"
        f"    options: {{channels: ['#{general.name}']}}\n"
    )
    docs = harness.documents(harness.sync_slack([day(-3), day(0)]))
    assert docs and {d.metadata["channel_id"] for d in docs} == {general.id}


def test_rerun_is_idempotent(harness):
    first = by_id(harness.documents(harness.sync_slack([day(-2), day(-1)])))
    second = by_id(harness.documents(harness.sync_slack([day(-2), day(-1)])))
    assert first == second


def test_today_incremental_run_fetches_only_changes(harness, company):
    first = harness.sync_slack([day(0)])
    assert harness.metadata(first, "slack")["mode"] == "full"

    # An edit to a message two days old (inside the 7-day lookback), a new message today and
    # a new reply to an existing thread.
    channel = next(
        c for c in company.chat_channels()
        if not c.is_private and not c.is_archived
        and any(abs(float(m.ts) - (clock.now_epoch() - 2 * 86400)) < 86400 and m.user
                for m in company.channel_messages(c.id))
    )
    old = next(
        m for m in company.channel_messages(channel.id)
        if abs(float(m.ts) - (clock.now_epoch() - 2 * 86400)) < 86400 and m.user and not m.subtype
    )
    harness.sandbox.slack.edit_message(channel.id, old.ts, "edited: the SUBS-1 launch moved")
    poster = company.people[1].user_id
    new_ts = harness.sandbox.slack.post(channel.id, poster, "brand new message about CORE-7")
    parent = next(
        m for c in company.chat_channels() if not c.is_archived and company.bot_can_read(c)
        for m in company.channel_messages(c.id)
        if company.thread_replies(c.id, m.ts) and float(m.ts) > clock.now_epoch() - 5 * 86400
    )
    parent_channel = next(
        c.id for c in company.chat_channels()
        if any(m is parent for m in company.channel_messages(c.id))
    )
    reply_ts = harness.sandbox.slack.post(parent_channel, poster, "late reply", thread_ts=parent.ts)

    second = harness.sync_slack([day(0)])
    meta = harness.metadata(second, "slack")
    assert meta["mode"] == "incremental"
    docs = by_id(harness.documents(second))
    assert docs[f"slack:acme:{channel.id}:{old.ts}"].text == "edited: the SUBS-1 launch moved"
    assert docs[f"slack:acme:{channel.id}:{new_ts}"].text == "brand new message about CORE-7"
    assert docs[f"slack:acme:{parent_channel}:{reply_ts}"].metadata["thread_ts"] == parent.ts
    assert len(docs) == 3  # nothing unchanged is re-emitted

    third = harness.sync_slack([day(0)])
    assert harness.documents(third) == []
    assert harness.metadata(third, "slack")["high_water_mark"] > meta["high_water_mark"]


def test_rate_limit_waited_out(harness):
    harness.sandbox.knobs.inject("conversations.history", "429", count=2, retry_after=1)
    started = time.monotonic()
    result = harness.sync_slack([day(-1)])
    meta = harness.metadata(result, "slack")
    assert meta["run_rate_limited_429"] == 2
    assert time.monotonic() - started >= 1.0  # each 429 asked for 1 s (two workers may wait in parallel)
    assert harness.sandbox.knobs.count_429["conversations.history"] == 2


def test_server_errors_and_malformed_bodies_retried(harness, company):
    harness.sandbox.knobs.inject("conversations.history", "500", count=2)
    harness.sandbox.knobs.inject("users.info", "malformed", count=1)
    harness.sandbox.knobs.inject("conversations.list", "503", count=1)
    result = harness.sync_slack([day(-2), day(-1)])
    meta = harness.metadata(result, "slack")
    assert meta["run_retries"] >= 4
    assert {d.doc_id for d in harness.documents(result)} == set(expected_documents(company, -2, -1))


def test_bad_credentials_fail_fast_naming_source_and_connection(harness):
    result = harness.sync_slack([day(-1)], connection="broken", raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    message = failures[-1].step_failure_data.error.message
    assert "slack connection 'broken'" in message and "invalid_auth" in message
    assert "xoxb" not in message
    # One auth.test, no client retries and no Dagster step retries for an auth error.
    assert harness.sandbox.knobs.calls["auth.test"] == 1
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]


def test_second_connection_keeps_syncing_when_first_is_broken(harness, company):
    assert not harness.sync_slack([day(-1)], connection="broken", raise_on_error=False).success
    result = harness.sync_slack([day(-1)], connection="acme")
    assert {d.doc_id for d in harness.documents(result)} == set(expected_documents(company, -1, -1))


def test_documents_land_before_the_materialization(harness):
    result = harness.sync_slack([day(-1)])
    (path,) = harness.metadata(result, "slack")["documents_files"]
    assert DocumentFiles.read(path) == harness.documents(result)
    assert not list(harness.tmp.glob("documents/**/*.tmp"))
