"""Slack deletions reach the index: Slack's deletion records become tombstones, a full read
lists what exists, and the daily reconciliation lists exactly what still exists (and raises
rather than list from a failed page); vector_index then drops what is gone."""

from datetime import datetime, timedelta, timezone
from math import ceil
from types import SimpleNamespace

import pytest
from dagster import materialize

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.documents import Document, DocumentFiles, Listing, Tombstone
from sync_pipelines.errors import MalformedResponseError, SourceError
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines.sources.registry import reconcile_asset
from sync_pipelines.sources.slack import SOURCE
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines.sources.slack.reconcile import SlackLister
from sync_pipelines.sources.slack.sync import SlackOptions, SlackSync
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import day, today

TOKEN_ENV = "TEST_SLACK_DELETIONS_TOKEN"


# --- Slack's deletion records, from a scripted workspace -------------------------------------

PARENT, REPLY, LIVE = "1700000000.000100", "1700000050.000100", "1700000200.000100"
GONE, GONE_REPLY = "1700000100.000100", "1700000150.000200"
# As the Slack reference shows them: a deleted parent kept for its replies, and message_deleted
# records with and without `previous_message` (here a deleted reply).
TOMBSTONE_MSG = {
    "type": "message",
    "subtype": "tombstone",
    "hidden": True,
    "text": "This message was deleted.",
    "user": "USLACKBOT",
    "ts": PARENT,
    "thread_ts": PARENT,
    "reply_count": 1,
    "latest_reply": REPLY,
}
HISTORY = [
    {"type": "message", "subtype": "message_deleted", "hidden": True,
     "ts": "1700000400.000100", "deleted_ts": GONE_REPLY,
     "previous_message": {"type": "message", "user": "U1", "text": "old reply",
                          "ts": GONE_REPLY, "thread_ts": PARENT}},
    {"type": "message", "subtype": "message_deleted", "hidden": True,
     "ts": "1700000300.000100", "deleted_ts": GONE},
    {"type": "message", "user": "U1", "text": "still here", "ts": LIVE},
    TOMBSTONE_MSG,
]
THREADS = {PARENT: [TOMBSTONE_MSG, {"type": "message", "user": "U1", "text": "a reply",
                                    "ts": REPLY, "thread_ts": PARENT}]}
DAY = datetime(2023, 11, 14, tzinfo=timezone.utc)  # PARENT's day


class ScriptedWorkspace:
    """The client calls a run makes, answered from one channel's pages."""

    page_size = 100

    def __init__(self, history, threads):
        self.history, self.threads = history, threads
        self.connection = SimpleNamespace(id="acme")

    def call(self, method, check=None, **params):
        if method == "users.info":
            return {"user": {"id": params["user"], "real_name": "Una", "profile": {}}}
        return {"ok": True, "url": "https://acme.slack.com/"}

    def paginate(self, method, key, **params):
        if method == "conversations.list":
            return iter([{"id": "C1", "name": "general", "is_member": True}])
        if method == "conversations.history":
            return iter(self.history)
        return iter(self.threads[params["ts"]])


def one_day() -> SyncWindow:
    return SyncWindow("acme", DAY, DAY + timedelta(days=1), (DAY.strftime("%Y-%m-%d"),))


def ids(*ts: str) -> set[str]:
    return {f"slack:acme:C1:{t}" for t in ts}


def test_tombstone_and_message_deleted_become_tombstones_not_documents():
    now = (DAY + timedelta(days=2)).timestamp()
    reader = SlackSync(ScriptedWorkspace(HISTORY, THREADS), SlackOptions(), max_workers=1)
    result = reader.run(one_day(), None, now=now)
    assert {d.doc_id for d in result.documents} == ids(LIVE, REPLY)  # the replies stay
    assert set(result.tombstones) == {
        Tombstone(f"slack:acme:C1:{PARENT}", "tombstone", now),
        Tombstone(f"slack:acme:C1:{GONE}", "message_deleted", 1700000300.0001),
        Tombstone(f"slack:acme:C1:{GONE_REPLY}", "message_deleted", 1700000400.0001),
    }
    (listing,) = result.listings
    assert listing.doc_ids == ids(LIVE, REPLY) and listing.scope == "slack:acme:C1:"
    (reconciled,) = SlackLister(ScriptedWorkspace(HISTORY, THREADS), SlackOptions()).run(one_day())
    assert reconciled.doc_ids == ids(LIVE, REPLY)


def test_a_deletion_record_without_a_deleted_ts_is_malformed():
    broken = [{"type": "message", "subtype": "message_deleted", "ts": LIVE}]
    with pytest.raises(MalformedResponseError, match="message_deleted"):
        SlackSync(ScriptedWorkspace(broken, {}), SlackOptions()).run(one_day(), None)
    with pytest.raises(MalformedResponseError, match="message_deleted"):
        SlackLister(ScriptedWorkspace(broken, {}), SlackOptions()).run(one_day())


# --- against the emulator ------------------------------------------------------------------


def readable(company):
    return [c for c in company.chat_channels() if not c.is_archived and company.bot_can_read(c)]


def existing(company, channel, start: float, end: float) -> set[str]:
    """Every message id of `channel` whose partition time lies in [start, end): top-level
    messages (a tombstone is none) and every reply of their threads."""
    found = set()
    for msg in company.channel_messages(channel.id):
        if start <= float(msg.ts) < end:
            thread = company.thread_replies(channel.id, msg.ts)
            found.update(m.ts for m in thread if m.subtype != "tombstone")
            if msg.subtype != "tombstone":
                found.add(msg.ts)
    return {f"slack:acme:{channel.id}:{ts}" for ts in found}


def delete_three(sandbox, start: float, end: float) -> dict[str, str]:
    """Deletes, in [start, end), a message without replies, a reply, and a parent whose other
    replies stay: {what: doc id}."""
    company = sandbox.company
    lone = thread = None
    for channel in readable(company):
        for msg in company.channel_messages(channel.id):
            if not start <= float(msg.ts) < end:
                continue
            replies = company.thread_replies(channel.id, msg.ts)
            if lone is None and not replies:
                lone = channel, msg.ts
            if thread is None and len(replies) >= 2:
                thread = channel, msg.ts, replies[0].ts
    (ch_lone, lone_ts), (ch_thread, parent_ts, reply_ts) = lone, thread
    for channel, ts in ((ch_lone, lone_ts), (ch_thread, reply_ts), (ch_thread, parent_ts)):
        sandbox.slack.delete_message(channel.id, ts)
    return {
        "lone": f"slack:acme:{ch_lone.id}:{lone_ts}",
        "reply": f"slack:acme:{ch_thread.id}:{reply_ts}",
        "parent": f"slack:acme:{ch_thread.id}:{parent_ts}",
    }


def bounds(first: int, last: int) -> tuple[float, float]:
    return (
        (today() + timedelta(days=first)).timestamp(),
        (today() + timedelta(days=last + 1)).timestamp(),
    )


def entries(harness, result) -> list:
    paths = harness.metadata(result, "slack")["documents_files"]
    return [e for p in paths for e in DocumentFiles.read_entries(p)]


def test_a_full_read_tombstones_a_deleted_parent_and_lists_exactly_the_days_messages(
    harness, company
):
    start, end = bounds(-2, -2)
    deleted = delete_three(harness.sandbox, start, end)
    began = clock.now_epoch()
    found = entries(harness, harness.sync_slack([day(-2)]))
    finished = clock.now_epoch()

    tombstones = [e for e in found if isinstance(e, Tombstone)]
    assert [(t.doc_id, t.reason) for t in tombstones] == [(deleted["parent"], "tombstone")]
    listings = {e.scope: e for e in found if isinstance(e, Listing)}
    assert set(listings) == {f"slack:acme:{c.id}:" for c in readable(company)}
    for channel in readable(company):
        listing = listings[f"slack:acme:{channel.id}:"]
        assert listing.doc_ids == existing(company, channel, start, end)
        assert (listing.start, listing.end) == (start, end)
        assert began <= listing.listed_at <= finished
    listed = set().union(*(item.doc_ids for item in listings.values()))
    assert not listed & set(deleted.values())
    # Every message of a past day has text: what is listed is exactly what was written.
    assert {e.doc_id for e in found if isinstance(e, Document)} == listed


def test_an_incremental_run_lists_nothing_but_still_sees_a_tombstone(harness, company):
    assert [e for e in entries(harness, harness.sync_slack([day(0)])) if isinstance(e, Listing)]
    start, end = bounds(-2, 0)  # inside the 7-day lookback
    parent = delete_three(harness.sandbox, start, end)["parent"]
    second = harness.sync_slack([day(0)])
    assert harness.metadata(second, "slack")["mode"] == "incremental"
    later = entries(harness, second)
    assert not [e for e in later if isinstance(e, Listing)]
    assert [(e.doc_id, e.reason) for e in later if isinstance(e, Tombstone)] == [
        (parent, "tombstone")
    ]


def reconcile_run(sandbox, monkeypatch, **resource) -> SourceRun:
    """The run SOURCE.reconcile gets for the last 30 days, on the emulator, unpaced."""
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_SLACK_TOKEN)
    connection = Connection("acme", "slack", credentials={"token": TOKEN_ENV})
    settings = {"tier_limits_per_minute": {}, "page_size": 50, "max_workers": 2, "timeout_s": 5}
    res = SlackResource(base_url=sandbox.urls["slack"], **{**settings, **resource})
    window = reconcile_window("acme", SOURCE.reconcile.days)
    return SourceRun(
        context=None,
        connection=connection,
        resource=res,
        client=res.client_for(connection),
        options=SlackOptions(),
        window=window,
        previous=Previous(),
    )


def test_the_reconciliation_lists_exactly_what_exists_after_deletions(
    sandbox, company, monkeypatch
):
    deleted = delete_three(sandbox, *bounds(-3, -1))
    run = reconcile_run(sandbox, monkeypatch)
    began = clock.now_epoch()
    listings = {item.scope: item for item in SOURCE.reconcile.list_ids(run)}
    finished = clock.now_epoch()
    assert set(listings) == {f"slack:acme:{c.id}:" for c in readable(company)}
    for channel in readable(company):
        listing = listings[f"slack:acme:{channel.id}:"]
        assert listing.start == run.window.start_epoch
        # up to now (the window's end is tomorrow), listed after that instant
        assert began <= listing.end <= listing.listed_at <= finished
        assert listing.doc_ids == existing(company, channel, listing.start, listing.end)
    listed = set().union(*(item.doc_ids for item in listings.values()))
    assert not listed & set(deleted.values())
    # ids only: no user lookups, no member lists
    assert sandbox.knobs.calls["users.info"] == sandbox.knobs.calls["conversations.members"] == 0


@pytest.mark.parametrize("route", ["conversations.history", "conversations.replies"])
@pytest.mark.parametrize("kind", ["500", "malformed"])
def test_a_failing_page_makes_the_lister_raise(sandbox, monkeypatch, route, kind):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    run = reconcile_run(sandbox, monkeypatch, max_attempts=2, max_workers=1)
    sandbox.knobs.inject(route, kind, count=50)
    with pytest.raises(SourceError, match=route):
        SOURCE.reconcile.list_ids(run)


def reconciliation_calls(company: Company, page_size: int) -> dict[str, int]:
    """What a reconciliation of the whole company costs: one channel list, a join per public
    channel the bot is not in, history pages per channel, one replies call per thread."""
    channels = readable(company)
    threads = sum(
        1 for c in channels for m in company.channel_messages(c.id)
        if company.thread_replies(c.id, m.ts)
    )
    bot = company.bot.user_id
    return {
        "conversations.list": 1,
        "conversations.join": sum(1 for c in channels if bot not in c.members),
        "conversations.history": sum(
            max(1, ceil(len(company.channel_messages(c.id)) / page_size)) for c in channels
        ),
        "conversations.replies": threads,
    }


def test_a_30_day_reconciliation_costs_history_pages_and_one_call_per_thread(monkeypatch):
    company = Company.generate(seed=7, messages=3000, days=5)  # the demo's company
    expected = reconciliation_calls(company, page_size=999)
    with Sandbox(company=company) as sandbox:
        run = reconcile_run(sandbox, monkeypatch, page_size=999)
        SOURCE.reconcile.list_ids(run)
        served = {route: calls for route, calls in sandbox.knobs.calls.items() if calls}
    assert served == {route: calls for route, calls in expected.items() if calls}


def indexed(harness) -> set[str]:
    return {vector_id.partition("#")[0] for vector_id in harness.vector_store.build().ids()}


def test_deleted_messages_leave_the_index_when_their_day_is_read_again(harness):
    harness.sync_slack([day(-2)])
    harness.index()
    before = indexed(harness)
    deleted = set(delete_three(harness.sandbox, *bounds(-2, -2)).values())
    assert deleted <= before
    harness.sync_slack([day(-2)])
    harness.index()
    assert indexed(harness) == before - deleted  # the tombstoned parent's other replies stay


def test_the_daily_reconciliation_takes_deletions_out_of_the_index(harness):
    harness.sync_slack([day(-3), day(0)])
    harness.index()
    before = indexed(harness)
    deleted = set(delete_three(harness.sandbox, *bounds(-3, -1)).values())
    assert deleted <= before
    materialize(
        [reconcile_asset("slack")],
        partition_key="acme",
        instance=harness.instance,
        resources=harness.resources(),
    )
    harness.index()
    assert indexed(harness) == before - deleted
