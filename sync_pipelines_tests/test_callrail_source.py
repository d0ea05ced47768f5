"""CallRail end to end and its pieces: rows in the warehouse equal the emulator's truth, a
re-run changes nothing, an edit updates one row, the lookback re-reads recent days (CallRail
has no updated-time filter), transcriptions become documents once ready, access follows the
option, and the read window respects the retention."""

from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

import pytest
from sync_pipelines_sandbox.callrail.contract import CONTRACT, searchable, truth
from sync_pipelines_sandbox.callrail.data import CallRailData

from sync_pipelines import clock
from sync_pipelines.documents import DocumentFiles
from sync_pipelines.sources.callrail.client import RETENTION_S
from sync_pipelines.sources.callrail.tables import (
    CallRailOptions,
    call_document,
    conversation_document,
    form_document,
    read_range,
)
from sync_pipelines.warehouse.tables import CrmRun
from sync_pipelines_tests.conftest import day, today

ENV = "TEST_CALLRAIL_KEY"


@pytest.fixture
def callrail(harness, monkeypatch, request):
    options = getattr(request, "param", "")
    monkeypatch.setenv(ENV, CONTRACT.good_secret)
    entry = CONTRACT.registry_entry(harness.sandbox, "acme", ENV)
    if options:
        entry = entry.replace("options: {", "options: {" + options + ", ")
    harness.registry.write_text("connections:\n" + entry)
    harness.extra_resources = CONTRACT.resources(harness.sandbox)
    return harness


def days() -> list[str]:
    return [day(-3), day(0)]  # on the pinned clock: computed in the test, not at import


def rows(harness, table):
    return harness.warehouse.rows("callrail", table, "acme")


def window():
    start = today() + timedelta(days=-3)
    return start.timestamp(), (today() + timedelta(days=1)).timestamp()


def test_rows_equal_the_truth_and_a_rerun_changes_nothing(callrail):
    result = callrail.sync(CONTRACT.asset, days())
    start, end = window()
    for table in ("calls", "form_submissions", "text_messages"):
        expected = {i.id for i in truth(callrail.sandbox.company, start, end, (table,))}
        assert {r["id"] for r in rows(callrail, table)} == expected and expected
    meta = callrail.metadata(result, "callrail")
    assert meta["run_rows_calls"] == len(rows(callrail, "calls"))
    before = {t: sorted(r["id"] for r in rows(callrail, t)) for t in ("calls", "text_messages")}
    callrail.sync(CONTRACT.asset, days())
    assert {t: sorted(r["id"] for r in rows(callrail, t)) for t in before} == before


def test_an_edit_updates_one_row(callrail):
    callrail.sync(CONTRACT.asset, days())
    start, end = window()
    call = truth(callrail.sandbox.company, start, end, ("calls",))[3]
    CallRailData.of(callrail.sandbox.company).edit_call(call.id, note="Customer wants a callback")
    before = {r["id"]: r for r in rows(callrail, "calls")}
    result = callrail.sync(CONTRACT.asset, days())
    after = {r["id"]: r for r in rows(callrail, "calls")}
    assert after.keys() == before.keys()
    changed = [i for i in after if after[i]["note"] != before[i]["note"]]
    assert changed == [call.id] and after[call.id]["note"] == "Customer wants a callback"
    doc = next(d for d in callrail.documents(result, "callrail") if call.id in d.doc_id)
    assert "Note: Customer wants a callback" in doc.text


def test_a_call_no_longer_listed_is_soft_deleted_and_tombstoned(callrail):
    callrail.sync(CONTRACT.asset, days())
    start, end = window()
    data = CallRailData.of(callrail.sandbox.company)
    spam = [c for c in truth(callrail.sandbox.company, start, end, ("calls",)) if searchable(c)]
    data.hide_call(spam[0].id)  # marked as spam: absent from every listing
    result = callrail.sync(CONTRACT.asset, days())
    by_id = {r["id"]: r for r in rows(callrail, "calls")}
    assert by_id[spam[0].id]["_deleted_at"] is not None
    assert [r for r in by_id.values() if r["_deleted_at"] is not None] == [by_id[spam[0].id]]
    paths = callrail.metadata(result, "callrail")["documents_files"]
    gone = {t.doc_id for p in paths for t in DocumentFiles.read_tombstones(p)}
    assert gone == {f"callrail:acme:calls/{spam[0].id}"}
    assert callrail.metadata(result, "callrail")["run_rows_deleted_calls"] == 1
    data.hidden.discard(spam[0].id)  # restored: listed again, the row lives again
    callrail.sync(CONTRACT.asset, days())
    assert {r["id"]: r for r in rows(callrail, "calls")}[spam[0].id]["_deleted_at"] is None


def test_transcriptions_become_documents_once_ready(callrail):
    start, end = window()
    data = CallRailData.of(callrail.sandbox.company)
    waiting = next(
        c
        for c in truth(callrail.sandbox.company, start, end, ("calls",))
        if c.fields["answered"] and c.fields["note"] is None
    )
    data.transcription_pending(waiting.id)
    first = callrail.sync(CONTRACT.asset, days())
    doc_id = f"callrail:acme:calls/{waiting.id}"
    # Not transcribed and no note: nothing to search yet, but the row is loaded.
    assert doc_id not in {d.doc_id for d in callrail.documents(first, "callrail")}
    assert waiting.id in {r["id"] for r in rows(callrail, "calls")}
    data.finish_transcription(waiting.id)
    second = callrail.sync(CONTRACT.asset, days())
    doc = next(d for d in callrail.documents(second, "callrail") if d.doc_id == doc_id)
    assert "Transcription:\nAgent: Thanks for calling" in doc.text
    assert doc.metadata["has_transcription"] is True
    assert doc.timestamp_epoch == waiting.at


@pytest.mark.parametrize("callrail", ["lookback_hours: 48"], indirect=True)
def test_today_rereads_the_lookback_for_late_edits(callrail):
    """A note added today to a call of the day before reaches the index through the hourly
    run of today's partition (48 h of lookback: some calls whatever the hour)."""
    now = clock.now_epoch()
    midnight = datetime.combine(clock.today(), time(), UTC).timestamp()
    company = callrail.sandbox.company
    recent = truth(company, now - 44 * 3600, midnight, ("calls",))
    assert recent, "the fixture company has calls in the 44 hours before today"
    call = recent[-1]
    CallRailData.of(company).edit_call(call.id, note="Late note after the call")
    result = callrail.sync(CONTRACT.asset, [day(0)])
    docs = {d.doc_id: d for d in callrail.documents(result, "callrail")}
    assert "Late note after the call" in docs[f"callrail:acme:calls/{call.id}"].text
    assert call.id in {r["id"] for r in rows(callrail, "calls")}


@pytest.mark.parametrize("callrail", ["access: [sales@acme.test]"], indirect=True)
def test_access_follows_the_option(callrail):
    result = callrail.sync(CONTRACT.asset, days())
    docs = callrail.documents(result, "callrail")
    assert docs and all(d.access == ("sales@acme.test",) for d in docs)
    start, end = window()
    company = callrail.sandbox.company
    assert len(docs) == sum(1 for i in truth(company, start, end) if searchable(i))


def fake_run(lower, upper, now, **options):
    run = SimpleNamespace(
        options=CallRailOptions(**options),
        connection=SimpleNamespace(id="acme"),
        client=SimpleNamespace(account="ACC1"),
    )
    return CrmRun(run=run, lower=lower, upper=upper, now=now, page_size=200, full=True)


def test_the_read_range_widens_by_the_lookback_only_near_now():
    now = 1_800_000_000.0
    assert read_range(fake_run(now - 3600, now, now)) == (now - 86_400, now)
    assert read_range(fake_run(now - 3600, now, now, lookback_hours=0)) == (now - 3600, now)
    past = (now - 10 * 86_400, now - 5 * 86_400)
    assert read_range(fake_run(*past, now)) == past  # a backfill reads its days only
    old = read_range(fake_run(now - 800 * 86_400, now - 700 * 86_400, now))
    assert old[0] == now - RETENTION_S  # never past the 25-month retention


CALL = {
    "id": "CAL1",
    "start_time": "2026-11-18T09:30:00.000-05:00",
    "customer_name": "Lea Larsen",
    "customer_phone_number": "+15557295481",
    "direction": "inbound",
    "duration": 95,
    "source": "Google Ads",
    "lead_status": "good_lead",
    "tags": [{"name": "renewal", "color": "gray1"}, "vip"],
    "agent_email": "sara.park@acme.test",
    "note": None,
    "transcription": None,
    "timeline_url": "https://app.callrail.com/timeline/CAL1",
}


def test_call_documents_need_a_note_or_a_transcription():
    run = fake_run(0, 1, 1)
    assert call_document(CALL, run) is None
    doc = call_document({**CALL, "transcription": "Agent: Hello.\n\nCaller: Hi."}, run)
    assert doc.doc_id == "callrail:acme:calls/CAL1" and doc.access == ("all",)
    assert doc.timestamp_epoch == datetime(2026, 11, 18, 14, 30, tzinfo=UTC).timestamp()
    assert doc.created_at == "2026-11-18T14:30:00Z" and doc.author == "sara.park@acme.test"
    assert "Inbound call with Lea Larsen (+15557295481)" in doc.text
    assert "Tags: renewal, vip" in doc.text and "Transcription:\nAgent: Hello." in doc.text
    assert doc.metadata["tags"] == ["renewal", "vip"] and doc.metadata["object"] == "calls"
    noted = call_document({**CALL, "note": "Wants SSO"}, run)
    assert "Note: Wants SSO" in noted.text and noted.metadata["has_transcription"] is False


def test_form_and_conversation_documents_carry_their_text():
    run = fake_run(0, 1, 1, access=["ops"])
    form = form_document(
        {
            "id": "F1",
            "submitted_at": "2026-11-18T10:00:00Z",
            "customer_name": "Ana",
            "form_data": {"email": "ana@x.test", "message": "Quote for Globex"},
        },
        run,
    )
    assert "message: Quote for Globex" in form.text and form.access == ("ops",)
    talk = conversation_document(
        {
            "id": "S1",
            "last_message_at": "2026-11-18T10:00:00Z",
            "customer_name": "Ana",
            "recent_messages": [
                {"direction": "outbound", "content": "Sure", "created_at": "2026-11-18T10:00:00Z"},
                {
                    "direction": "inbound",
                    "content": "Call me?",
                    "created_at": "2026-11-18T09:50:00Z",
                },
            ],
        },
        run,
    )
    assert talk.text.splitlines()[1:] == ["Ana: Call me?", "Agent: Sure"]
    assert talk.doc_id == "callrail:acme:text_messages/S1"
