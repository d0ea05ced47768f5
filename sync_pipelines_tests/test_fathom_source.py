"""The Fathom source: its client (paging, strict bounds, 429, 5xx, bad key, malformed pages),
the documents it writes (shape, access, the created_at day), not-ready meetings, and the
Dagster asset."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sync_pipelines_sandbox.fathom.data import SANDBOX_FATHOM_API_KEY, FathomData, iso

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourcePermanentError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import SourceAuthError
from sync_pipelines.sources.fathom.client import (
    DOCUMENTED_RATE_PER_S,
    FathomClient,
    FathomResource,
    created_bounds,
)
from sync_pipelines.sources.fathom.sync import FathomOptions, FathomSync
from sync_pipelines.sources.pending import MAX_WAIT_S
from sync_pipelines.sources.registry import declaration, source_asset
from sync_pipelines_tests.conftest import day, today

KEY_ENV = "TEST_FATHOM_KEY"


@pytest.fixture
def connection(sandbox, monkeypatch) -> Connection:
    monkeypatch.setenv(KEY_ENV, SANDBOX_FATHOM_API_KEY)
    return Connection(
        "acme", "fathom", credentials={"api_key": KEY_ENV}, base_url=sandbox.urls["fathom"]
    )


@pytest.fixture
def data(sandbox) -> FathomData:
    return FathomData.of(sandbox.company)


def window(first: int, last: int) -> SyncWindow:
    days = tuple(day(o) for o in range(first, last + 1))
    return SyncWindow(
        "acme", today() + timedelta(days=first), today() + timedelta(days=last + 1), days
    )


def run(connection, win, hwm=None, now=None, pending=(), **options):
    resource = FathomResource(rate_per_s=0, timeout_s=10)
    with resource.client_for(connection) as client:
        reader = FathomSync(client, FathomOptions.from_connection(options, "fathom"), "acme")
        result = reader.run(win, hwm, now=now, pending=pending)
    return result, client


def people(sandbox, n):
    return [p for p in sandbox.company.people if not p.is_bot][:n]


def ids(result) -> set[int]:
    return {int(d.metadata["meeting_id"]) for d in result.documents}


def scripted(*pages) -> tuple[FathomClient, list[httpx.Request]]:
    """A client whose HTTP answers are the scripted page bodies, in order."""
    seen: list[httpx.Request] = []
    answers = list(pages)

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answers.pop(0))

    http = HttpSourceClient(
        source="fathom",
        connection_id="acme",
        base_url="http://f.test",
        transport=httpx.MockTransport(answer),
        backoff_s=0,
    )
    return FathomClient(http), seen


def item(n: int, created: str = "2026-12-01T10:00:00Z") -> dict:
    return {"recording_id": n, "created_at": created, "title": f"M{n}"}


# ------------------------------------------------------------------ the client
def test_listing_pages_through_every_cursor_with_strict_bounds(sandbox, connection, data):
    win = window(-3, 0)
    with FathomResource(rate_per_s=0).client_for(connection) as client:
        listed = list(client.meetings(win.start_epoch, win.end_epoch))
    expected = [r for r in data.recordings() if win.start_epoch <= r.created < win.end_epoch]
    assert [m["recording_id"] for m in listed] == [r.recording_id for r in expected]
    assert client.pages_read == sandbox.knobs.calls["meetings"] == -(-len(expected) // 10) > 2
    # created_after/created_before are strict: asked one second wider on both sides.
    assert created_bounds(1_800_000_000.0, 1_800_086_400.0) == {
        "created_after": "2027-01-15T07:59:59Z",
        "created_before": "2027-01-16T08:00:01Z",
    }


def test_the_last_page_may_be_empty_or_leave_items_out(sandbox):
    client, seen = scripted(
        {"limit": 10, "next_cursor": "c2", "items": [item(1), item(2)]},
        {"limit": 10, "next_cursor": "c3", "items": [item(3)]},
        {"limit": 10, "next_cursor": None, "items": []},
    )
    assert [m["recording_id"] for m in client.meetings(0, 2e9)] == [1, 2, 3]
    assert [r.url.params.get("cursor") for r in seen] == [None, "c2", "c3"]
    assert seen[0].url.params["include_transcript"] == "true"
    client, seen = scripted({"limit": 10, "next_cursor": None})
    assert list(client.meetings(0, 2e9, ())) == [] and len(seen) == 1
    assert "include_transcript" not in seen[0].url.params


@pytest.mark.parametrize(
    "page",
    [
        {"next_cursor": "c2"},
        {"items": {"a": 1}},
        {"items": [{"created_at": "x"}]},
        {"items": [{"recording_id": 1, "created_at": "yesterday"}]},
        ["not", "an", "object"],
    ],
    ids=["cursor without items", "items not a list", "no id", "bad created_at", "a list"],
)
def test_a_malformed_page_is_retried_then_fails(page, monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    client, seen = scripted(page, page, page)
    with pytest.raises(SourcePermanentError, match="malformed answer after 3 attempts"):
        list(client.meetings(0, 2e9))
    assert len(seen) == 3  # the malformed-answer budget
    client, seen = scripted(page, {"next_cursor": None, "items": [item(7)]})
    assert [m["recording_id"] for m in client.meetings(0, 2e9)] == [7]


def test_429_is_waited_out_and_5xx_retried(sandbox, connection, data):
    win = window(-1, -1)
    expected = {r.recording_id for r in data.expected(win.start_epoch, win.end_epoch)}
    sandbox.knobs.inject("meetings", "429", count=1, retry_after=1)
    result, client = run(connection, win)
    assert client.stats.rate_limited == 1 and ids(result) == expected
    sandbox.knobs.inject("meetings", "500", count=1)
    sandbox.knobs.inject("meetings", "503", count=1)
    result, client = run(connection, win)
    assert client.stats.retries == 2 and ids(result) == expected


@pytest.mark.parametrize("how", ["rotated", "knob"])
def test_a_bad_key_fails_fast_naming_the_connection(sandbox, connection, how):
    if how == "rotated":
        sandbox.fathom.set_api_key("rotated")
    else:
        sandbox.knobs.inject("meetings", "401")
    try:
        with pytest.raises(SourceAuthError, match="fathom connection 'acme'") as caught:
            run(connection, window(-1, -1))
    finally:
        sandbox.fathom.set_api_key(SANDBOX_FATHOM_API_KEY)
    assert SANDBOX_FATHOM_API_KEY not in str(caught.value)
    assert sum(sandbox.knobs.calls.values()) == 1


def test_resource_defaults_and_url_precedence(connection, monkeypatch):
    monkeypatch.delenv("FATHOM_BASE_URL", raising=False)
    monkeypatch.delenv("FATHOM_RATE_PER_S", raising=False)
    bare = Connection("acme", "fathom", credentials={"api_key": KEY_ENV})
    with FathomResource().client_for(bare) as client:
        assert client.http.host == "api.fathom.ai"
        assert client.http.limiter.rate == DOCUMENTED_RATE_PER_S == 1.0
    suffixed = Connection(
        "acme",
        "fathom",
        credentials={"api_key": KEY_ENV},
        base_url="https://proxy.test/external/v1/",
    )
    with FathomResource().client_for(suffixed) as client:
        assert str(client.http._client.base_url) == "https://proxy.test"
    with pytest.raises(ValueError, match="page_size must be between 1 and 10"):
        FathomResource(page_size=50).client_for(connection)


# ------------------------------------------------------------------ documents
def test_documents_have_transcript_summary_action_items_and_access(sandbox, connection, data):
    win = window(-3, 0)
    result, _ = run(connection, win)
    expected = data.expected(win.start_epoch, clock.now_epoch())
    docs = {int(d.metadata["meeting_id"]): d for d in result.documents}
    assert set(docs) == {r.recording_id for r in expected}
    for r in expected:
        doc, content = docs[r.recording_id], data.content(r)
        emails = sorted({v.email for v in r.invitees})
        assert doc.doc_id == f"fathom:acme:{r.recording_id}" and doc.title == r.title
        assert doc.timestamp_epoch == r.created and doc.created_at.startswith(iso(r.created)[:19])
        assert doc.access == tuple(emails) and doc.metadata["attendee_emails"] == emails
        assert doc.author == r.recorder.name and doc.url.endswith(str(r.recording_id))
        assert doc.metadata["external_emails"] == sorted(
            v.email for v in r.invitees if v.is_external
        )
        text = doc.text
        assert text.startswith(f"Meeting: {r.title}\n")
        assert f"Recorded by: {r.recorder.name} <{r.recorder.email}>" in text
        assert content["default_summary"]["markdown_formatted"].strip() in text
        for action in content["action_items"]:
            assignee = action["assignee"]
            assert (
                f"- {action['description']} ({assignee['name']} <{assignee['email']}>) "
                f"[{action['recording_timestamp']}]"
            ) in text
        spoken = text.split("\nTranscript:\n", 1)[1].split("\n")
        first = content["transcript"][0]
        assert spoken[0].startswith(
            f"[00:00:00] {first['speaker']['display_name']}: {first['text']}"
        )
        assert " ".join(line.split(": ", 1)[1] for line in spoken) == " ".join(
            t["text"] for t in content["transcript"]
        )
        for fact in data.planted(r):  # call_insights reads these lines
            assert fact.quote in text
        assert not doc.metadata["transcript_missing"]
    assert result.meetings_external == sum(bool(r.customer) for r in expected) > 0


def test_turns_merge_one_speakers_sentences_keeping_the_first_timestamp(sandbox, connection, data):
    who = people(sandbox, 2)
    script = [(0, "Hello."), (0, "Shall we start?"), (1, "Yes."), (0, "Good.")]
    meeting = data.add_meeting("Scripted", who, minutes=5, script=script)
    result, _ = run(
        connection, window(0, 0) if meeting.created >= today().timestamp() else window(-1, -1)
    )
    (doc,) = [d for d in result.documents if d.metadata["meeting_id"] == str(meeting.recording_id)]
    assert doc.text.split("\nTranscript:\n")[1].split("\n") == [
        f"[00:00:00] {who[0].name}: Hello. Shall we start?",
        f"[00:02:00] {who[1].name}: Yes.",
        f"[00:03:00] {who[0].name}: Good.",
    ]


def test_a_meeting_recorded_across_midnight_belongs_to_the_day_it_was_created(
    sandbox, connection, data
):
    midnight = today().timestamp() - 86_400  # yesterday 00:00 UTC
    late = data.add_meeting("Late call", people(sandbox, 3), start=midnight - 20 * 60, minutes=40)
    assert late.start < midnight < late.created
    before, _ = run(connection, window(-2, -2))
    after, _ = run(connection, window(-1, -1))
    assert late.recording_id not in ids(before) and late.recording_id in ids(after)
    (listing,) = before.listings
    assert f"fathom:acme:{late.recording_id}" not in listing.doc_ids
    generated = [r for r in data.recordings() if iso(r.start)[:10] != iso(r.created)[:10]]
    assert generated and all(
        r.recording_id in ids(after)
        for r in generated
        if day(-1) == iso(r.created)[:10] and not r.processing()
    )


def test_filters_and_per_recording_content(sandbox, connection, data):
    win = window(-3, 0)
    inline, _ = run(connection, win)
    calls_before = dict(sandbox.knobs.calls)
    separate, _ = run(connection, win, inline_content=False)
    assert sorted(inline.documents, key=lambda d: d.doc_id) == sorted(
        separate.documents, key=lambda d: d.doc_id
    )
    n = len(separate.documents)
    assert sandbox.knobs.calls["transcript"] - calls_before.get("transcript", 0) == n
    assert sandbox.knobs.calls["summary"] - calls_before.get("summary", 0) == n
    assert separate.content_calls == 2 * n
    sales, _ = run(connection, win, teams=["Sales"])
    assert ids(sales) == {
        r.recording_id for r in data.expected(win.start_epoch, 2e9) if r.team == "Sales"
    }
    with pytest.raises(ValueError, match="fathom option 'teams'"):
        FathomOptions.from_connection({"teams": "Sales"}, "fathom")


# ------------------------------------------------------------------ not ready yet
def test_a_meeting_still_processing_waits_then_is_written_when_ready(sandbox, connection, data):
    win = window(-1, -1)
    noon = win.start_epoch + 12 * 3600
    busy = data.add_meeting(
        "Processing", people(sandbox, 2), start=noon, ready_at=clock.now_epoch() + 3600
    )
    doc_id = f"fathom:acme:{busy.recording_id}"
    first, _ = run(connection, win)
    assert doc_id not in {d.doc_id for d in first.documents}  # never written empty
    assert doc_id in first.listings[0].doc_ids  # it exists
    (item,) = first.pending
    assert (item.id, item.doc_id, item.at) == (str(busy.recording_id), doc_id, busy.created)
    # Still processing: a later run of another day fetches it again, and keeps waiting.
    calls = sandbox.knobs.calls["meetings"]
    again, _ = run(connection, window(0, 0), pending=first.pending)
    assert again.pending == first.pending and again.meetings_refetched == 1
    assert sandbox.knobs.calls["meetings"] > calls
    data.set_ready_at(busy.recording_id, None)
    ready, _ = run(connection, window(0, 0), pending=first.pending)
    (doc,) = [d for d in ready.documents if d.doc_id == doc_id]
    assert ready.pending == [] and "\nTranscript:\n[00:00:00]" in doc.text
    assert doc.timestamp_epoch == busy.created and not doc.metadata["transcript_missing"]


def test_a_meeting_processing_past_the_wait_is_written_flagged(sandbox, connection, data):
    win = window(-1, -1)
    busy = data.add_meeting(
        "Never done",
        people(sandbox, 2),
        start=win.start_epoch + 3600,
        ready_at=clock.now_epoch() + 30 * 86_400,
    )
    first, _ = run(connection, win)
    late = first.pending[0].first_seen + MAX_WAIT_S + 1
    gave_up, _ = run(connection, window(0, 0), pending=first.pending, now=late)
    (doc,) = [d for d in gave_up.documents if d.metadata["meeting_id"] == str(busy.recording_id)]
    assert doc.metadata["transcript_missing"] and "still processing" in doc.text
    assert gave_up.pending == [] and [i.id for i in gave_up.given_up] == [str(busy.recording_id)]


def test_a_pending_meeting_deleted_meanwhile_is_dropped(sandbox, connection, data):
    win = window(-1, -1)
    busy = data.add_meeting(
        "Deleted while processing",
        people(sandbox, 2),
        start=win.start_epoch + 7200,
        ready_at=clock.now_epoch() + 3600,
    )
    first, _ = run(connection, win)
    sandbox.fathom.delete_meeting(busy.recording_id)
    later, _ = run(connection, window(0, 0), pending=first.pending)
    assert later.pending == [] and later.meetings_vanished == 1


# ------------------------------------------------------------------ the declaration and asset
def test_declaration():
    spec = declaration("fathom")
    assert spec.cron == "7,22,37,52 * * * *" and spec.freshness_minutes == 30
    assert spec.transcripts and spec.credentials_env == {"api_key": "FATHOM_API_KEY"}
    assert spec.reconcile.cron == "25 3 * * *" and spec.reconcile.days == 30


def test_asset_writes_documents_pending_and_run_figures(harness, sandbox, monkeypatch, data):
    monkeypatch.setenv(KEY_ENV, SANDBOX_FATHOM_API_KEY)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: fathom\n"
        f"    base_url: {sandbox.urls['fathom']}\n"
        f"    credentials: {{api_key: {KEY_ENV}}}\n    options: {{lookback_hours: 1}}\n"
    )
    harness.extra_resources = {"fathom": FathomResource(rate_per_s=0, timeout_s=10)}
    noon = window(-1, -1).start_epoch + 12 * 3600
    busy = data.add_meeting(
        "Processing", people(sandbox, 2), start=noon, ready_at=clock.now_epoch() + 3600
    )
    result = harness.sync(source_asset("fathom"), [day(-1)])
    meta = harness.metadata(result, "fathom")
    docs = harness.documents(result, "fathom")
    assert meta["documents_written"] == len(docs) > 0 and meta["pending_items"] == 1
    assert json.loads(json.dumps(meta["pending"]))[0]["id"] == str(busy.recording_id)
    for key in ("meetings_fetched", "pages_read", "transcript_turns", "action_items"):
        assert f"run_{key}" in meta


def test_the_contracts_not_ready_record_waits_until_finished(sandbox, connection):
    from sync_pipelines_sandbox.fathom.contract import CONTRACT

    doc_id, finish = CONTRACT.not_ready(sandbox)
    first, last = CONTRACT.data_days
    held, _ = run(connection, window(first, last))
    assert doc_id not in {d.doc_id for d in held.documents}
    assert [i.doc_id for i in held.pending] == [doc_id]
    finish()
    ready, _ = run(connection, window(first, last), pending=held.pending)
    assert doc_id in {d.doc_id for d in ready.documents} and ready.pending == []
