"""The Gong source against its emulator: ground truth, paging, Gong's empty-filter 404, UTC
partitioning of offset times, 429/5xx/auth/malformed answers, the pending rule, the document
(speakers, CRM context, access) and the Dagster asset."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from sync_pipelines_sandbox.gong.data import (
    SANDBOX_GONG_ACCESS_KEY,
    SANDBOX_GONG_ACCESS_KEY_SECRET,
    Party,
)
from sync_pipelines_sandbox.insight_terms import facts_in

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.documents import ACCESS_ALL
from sync_pipelines.errors import MalformedResponseError, SourceAuthError, SourceError
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.gong.client import GongResource, started_epoch
from sync_pipelines.sources.gong.sync import GongOptions, GongSync
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, today
from sync_pipelines_tests.gong_fixtures import (
    KEY_ENV,
    Scripted,
    client_for,
    fixture_connection,  # noqa: F401 (the fixture `connection`)
    fixture_data,  # noqa: F401 (the fixture `data`)
    people,
    use_gong,
    window,
)

gong_asset = source_asset("gong")


def run(connection, window, hwm=None, batch=20, now=None, pending=(), **options):
    with client_for(connection, page_size=batch, max_attempts=3) as client:
        reader = GongSync(client, GongOptions.from_connection(options, "gong"), "acme")
        result = reader.run(window, hwm, now=now, pending=pending)
    return result, client


def ids(result) -> set[str]:
    return {d.metadata["call_id"] for d in result.documents}


def truth(data, w: SyncWindow) -> set[str]:
    return {c.id for c in data.expected(w.start_epoch, min(w.end_epoch, clock.now_epoch()))}


def noon(offset_days: int) -> float:
    return (today() + timedelta(days=offset_days)).timestamp() + 12 * 3600


# ------------------------------------------------------------------ ground truth and paging
def test_documents_match_the_calls_across_pages(sandbox, connection, data):
    sandbox.gong.page_size = 7
    result, client = run(connection, window(-3, 0), batch=9)
    expected = truth(data, window(-3, 0))
    assert ids(result) == expected and len(expected) > 50
    listed = sandbox.knobs.calls["extensive"]
    assert listed == -(-len(expected) // 7)  # every page, no cap, no extra call
    assert sandbox.knobs.calls["transcript"] >= -(-len(expected) // 9)
    assert result.calls_fetched == len(expected) == result.transcripts_fetched
    assert client.pages_read == sum(sandbox.knobs.calls.values())
    assert result.pending == [] and result.mode == "full"


def test_a_window_gong_has_no_call_in_is_empty_not_an_error(sandbox, connection):
    empty = SyncWindow("acme", datetime(2025, 1, 2, tzinfo=UTC),
                       datetime(2025, 1, 3, tzinfo=UTC), ("2025-01-02",))  # fmt: skip
    result, client = run(connection, empty)
    assert result.documents == [] and client.stats.retries == 0
    assert sandbox.knobs.calls["extensive"] == 1 and sandbox.knobs.calls["transcript"] == 0
    (listing,) = result.listings  # Gong said there is none: an empty, complete listing
    assert listing.doc_ids == frozenset()


def test_other_404s_stay_errors(sandbox, connection):
    sandbox.knobs.inject("extensive", "404")
    with pytest.raises(SourceError, match="HTTP 404"):
        run(connection, window(-1, -1))


def test_calls_are_partitioned_by_their_utc_start_whatever_their_offset(sandbox, connection, data):
    who = people(sandbox, 2)
    midnight = today().timestamp() - 86_400  # yesterday 00:00 UTC
    # 16:30 -08:00 the day before is 00:30 UTC yesterday; 05:29:59 +05:30 yesterday is still
    # the day before in UTC; 09:00 +09:00 yesterday is its midnight UTC exactly.
    early = data.add_call(who, started=midnight + 1800, offset_min=-480, title="West coast")
    late = data.add_call(who, started=midnight - 1, offset_min=330, title="India late")
    edge = data.add_call(who, started=midnight, offset_min=540, title="Tokyo morning")
    assert early.started_iso().endswith("T16:30:00-08:00")
    assert late.started_iso().endswith("T05:29:59+05:30")
    assert started_epoch("2026-11-17T16:30:00-08:00") == started_epoch("2026-11-18T00:30:00Z")
    result, _ = run(connection, window(-1, -1))
    assert {early.id, edge.id} <= ids(result) and late.id not in ids(result)
    (doc,) = [d for d in result.documents if d.metadata["call_id"] == early.id]
    assert doc.timestamp_epoch == midnight + 1800
    assert doc.metadata["started"].endswith("-08:00") and doc.created_at.endswith("+00:00")
    before, _ = run(connection, window(-2, -2))
    assert late.id in ids(before) and early.id not in ids(before)


def test_generated_calls_start_in_many_zones_and_around_midnight_utc(data):
    calls = data.calls()
    assert len({c.offset_min for c in calls}) >= 5
    hours = {datetime.fromtimestamp(c.started, UTC).hour for c in calls}
    assert {23, 0, 1} & hours


# ------------------------------------------------------------------ errors
def test_429_with_retry_after_is_waited_out(sandbox, connection, data):
    sandbox.knobs.inject("transcript", "429", count=1, retry_after=1)
    started = time.monotonic()
    result, client = run(connection, window(-1, -1))
    assert time.monotonic() - started >= 1.0
    assert client.stats.rate_limited == 1 and ids(result) == truth(data, window(-1, -1))


@pytest.mark.parametrize("kind", ["500", "503", "malformed", "html"])
def test_5xx_and_bad_bodies_are_retried(sandbox, connection, data, monkeypatch, kind):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    sandbox.knobs.inject("extensive", kind)
    result, client = run(connection, window(-1, -1))
    assert client.stats.retries == 1 and ids(result) == truth(data, window(-1, -1))


@pytest.mark.parametrize("how", ["key", "secret", "http"])
def test_bad_credentials_fail_fast_naming_the_connection(sandbox, connection, how, monkeypatch):
    if how == "key":
        monkeypatch.setenv(KEY_ENV, "revoked-key")
    elif how == "secret":
        sandbox.gong.set_credentials(SANDBOX_GONG_ACCESS_KEY, "rotated")
    else:
        sandbox.knobs.inject("extensive", "401")
    with pytest.raises(SourceAuthError, match="gong connection 'acme'") as caught:
        run(connection, window(-1, -1))
    assert SANDBOX_GONG_ACCESS_KEY_SECRET not in str(caught.value)
    assert "revoked-key" not in str(caught.value)
    assert sum(sandbox.knobs.calls.values()) == 1


@pytest.mark.parametrize(
    "page",
    [
        {"records": {}},
        {"calls": None},
        {"calls": [{"metaData": {"id": "1"}}]},
        {"calls": [{"metaData": {"id": "1", "started": "2026-11-18T10:00:00"}}]},
        {"calls": [{"metaData": {"started": "2026-11-18T10:00:00Z"}}]},
        {"calls": ["x"]},
    ],
    ids=["no calls", "null", "no start", "no offset", "no id", "not an object"],
)
def test_a_malformed_page_is_refused(page):
    from sync_pipelines.sources.gong.client import GongClient

    client = GongClient(Scripted(page))
    with pytest.raises(MalformedResponseError):
        list(client.calls(0, 1e9))


def test_an_empty_page_without_its_items_key_is_empty():
    from sync_pipelines.sources.gong.client import GongClient

    page = {"requestId": "r1", "records": {"totalRecords": 0, "currentPageSize": 0}}
    assert list(GongClient(Scripted(page)).calls(0, 1e9)) == []
    with pytest.raises(MalformedResponseError):  # more to come, yet no calls: not empty
        list(GongClient(Scripted({"records": {"currentPageSize": 0, "cursor": "c"}})).calls(0, 1))


def test_a_cursor_that_comes_back_stops_the_listing():
    from sync_pipelines.paging import PagingError
    from sync_pipelines.sources.gong.client import GongClient

    page = {"records": {"cursor": "same"}, "calls": []}
    with pytest.raises(PagingError, match="came back"):
        list(GongClient(Scripted(page, page, page)).calls(0, 1e9))


# ------------------------------------------------------------------ the pending rule
@pytest.mark.parametrize("style", ["empty", "absent"])
def test_a_call_not_transcribed_yet_waits_and_is_written_once_ready(
    sandbox, connection, data, style
):
    sandbox.gong.not_ready_style = style
    call = data.add_call(people(sandbox, 2), started=noon(-2),
                         ready_at=clock.now_epoch() + 3600)  # fmt: skip
    first, _ = run(connection, window(-2, -2))
    assert call.id not in ids(first)
    assert [p.id for p in first.pending] == [call.id]
    assert f"gong:acme:{call.id}" in first.listings[0].doc_ids  # it exists
    again, _ = run(connection, window(0, 0), pending=first.pending)  # still not ready
    assert call.id not in ids(again) and [p.id for p in again.pending] == [call.id]
    assert again.pending[0].first_seen == first.pending[0].first_seen
    data.set_ready_at(call.id, None)
    done, _ = run(connection, window(0, 0), pending=again.pending)
    (doc,) = [d for d in done.documents if d.metadata["call_id"] == call.id]
    assert done.pending == [] and done.calls_refetched == 1
    assert "Transcript:" in doc.text and not doc.metadata["transcript_missing"]


def test_a_pending_call_deleted_meanwhile_is_dropped(sandbox, connection, data):
    call = data.add_call(people(sandbox, 2), started=noon(-2),
                         ready_at=clock.now_epoch() + 3600)  # fmt: skip
    first, _ = run(connection, window(-2, -2))
    sandbox.gong.delete_call(call.id)
    later, _ = run(connection, window(0, 0), pending=first.pending)
    assert later.pending == [] and later.calls_vanished == 1


def test_a_call_waiting_seven_days_is_written_flagged(sandbox, connection, data):
    call = data.add_call(people(sandbox, 2), started=noon(-2),
                         ready_at=clock.now_epoch() + 30 * 86_400)  # fmt: skip
    first, _ = run(connection, window(-2, -2))
    week_later = clock.now_epoch() + 7 * 86_400 + 60
    final, _ = run(connection, window(-2, -2), pending=first.pending, now=week_later)
    (doc,) = [d for d in final.documents if d.metadata["call_id"] == call.id]
    assert doc.metadata["transcript_missing"] and "not available" in doc.text
    assert [p.id for p in final.given_up] == [call.id] and final.pending == []


# ------------------------------------------------------------------ the document
def test_document_speakers_crm_and_planted_lines(sandbox, connection, data):
    result, _ = run(connection, window(-3, 0))
    docs = {d.metadata["call_id"]: d for d in result.documents}
    kinds = set()
    for call in data.expected(window(-3, 0).start_epoch, clock.now_epoch()):
        doc, kinds = docs[call.id], kinds | {call.kind}
        assert doc.doc_id == f"gong:acme:{call.id}" and doc.title == call.title
        assert doc.url.endswith(call.id) and doc.author == call.host.name
        assert doc.timestamp_epoch == call.started
        assert doc.metadata["duration"] == call.duration_s
        internal = sorted(p.email for p in call.parties if p.internal)
        assert doc.access == tuple(internal) == tuple(doc.metadata["internal_emails"])
        assert doc.metadata["external_emails"] == sorted(
            p.email for p in call.parties if not p.internal
        )
        lines = doc.text.split("\n")
        assert lines[0] == f"Call: {call.title}"
        spoken = lines[lines.index("Transcript:") + 1 :]
        names = {p.name for p in call.parties}
        assert {line.split(": ", 1)[0] for line in spoken} <= names
        said = [s["text"] for m in data.transcript(call) for s in m["sentences"]]
        assert " ".join(line.split(": ", 1)[1] for line in spoken) == " ".join(said)
        speakers = [line.split(": ", 1)[0] for line in spoken]
        assert all(a != b for a, b in itertools.pairwise(speakers))
        if call.crm:
            assert doc.metadata["crm_accounts"] == [call.crm.account]
            assert doc.metadata["crm_opportunities"] == [call.crm.opportunity]
            assert doc.metadata["crm_systems"] == [call.crm.system]
            assert f"opportunity {call.crm.opportunity}" in doc.text
        else:
            assert doc.metadata["crm_accounts"] == [] and "CRM" not in doc.text
        found = {(f.kind, f.value) for f in facts_in(doc.text)}
        assert found == {(f.kind, f.value) for f in data.planted(call)}
    assert kinds == {"customer call", "product demo", "pipeline review"}
    assert result.calls_with_crm == sum(1 for c in docs if data.call(c).crm)


def test_unknown_speakers_and_consecutive_turns(sandbox, connection, data):
    who = people(sandbox, 2)
    guest = Party("Dana Fox", "dana@globex.example", False, "CTO")
    script = [(0, "Hello there."), (0, "Second sentence."), (2, "Hi from Globex."), (1, "Yes.")]
    call = data.add_call(who, started=noon(-1), guests=[guest], script=script)
    result, _ = run(connection, window(-1, -1))
    (doc,) = [d for d in result.documents if d.metadata["call_id"] == call.id]
    spoken = doc.text.split("Transcript:\n")[1].split("\n")
    assert spoken == [f"{who[0].name}: Hello there. Second sentence.",
                      "Dana Fox: Hi from Globex.", f"{who[1].name}: Yes."]  # fmt: skip
    assert "External participants: Dana Fox <dana@globex.example> (CTO)" in doc.text
    assert doc.access == tuple(sorted(p.email for p in who))


@pytest.mark.parametrize("private", [False, True])
def test_access_all_shares_calls_company_wide_but_private_ones(sandbox, connection, data, private):
    who = people(sandbox, 3)
    call = data.add_call(who, started=noon(-1), private=private)
    result, _ = run(connection, window(-1, -1), access="all")
    (doc,) = [d for d in result.documents if d.metadata["call_id"] == call.id]
    assert doc.access == (tuple(sorted(p.email for p in who)) if private else (ACCESS_ALL,))
    assert doc.metadata["is_private"] is private
    assert result.calls_shared + result.calls_private == len(result.documents)


@pytest.mark.parametrize(
    "options, named",
    [
        ({"access": "everyone"}, "gong option 'access'"),
        ({"lookback_hours": -1}, "gong option 'lookback_hours'"),
        ({"workspace": "1"}, "unknown gong option 'workspace'"),
    ],
)
def test_bad_options_name_the_option(options, named):
    with pytest.raises(ValueError, match=named):
        GongOptions.from_connection(options, "gong")


def test_a_workspace_filter_is_sent(sandbox, connection, data):
    result, _ = run(connection, window(-1, -1), workspace_id="999")
    assert result.documents == []
    result, _ = run(connection, window(-1, -1), workspace_id="623457276584334")
    assert ids(result) == truth(data, window(-1, -1))


# ------------------------------------------------------------------ the resource
def test_resource_defaults_and_base_url(connection, monkeypatch):
    monkeypatch.delenv("GONG_BASE_URL", raising=False)
    monkeypatch.delenv("GONG_RATE_PER_S", raising=False)
    with GongResource().client_for(connection) as client:
        assert client.http.limiter.rate == 3.0 and client.batch_size == 100
    no_url = Connection("acme", "gong", credentials=connection.credentials)
    with pytest.raises(ValueError, match="us-12345.api.gong.io"):
        GongResource().client_for(no_url)
    with pytest.raises(ValueError, match="page_size must be between 1 and 100"):
        GongResource(page_size=101).client_for(connection)
    with_v2 = Connection("acme", "gong", credentials=connection.credentials,
                         base_url=connection.base_url + "/v2/")  # fmt: skip
    result, _ = run(with_v2, window(-1, -1))
    assert result.documents


def test_the_environments_proxy_still_applies(monkeypatch):
    from sync_pipelines.sources.gong.client import env_transport

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert "Proxy" not in type(env_transport("https://us-1.api.gong.io")._pool).__name__
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert "Proxy" in type(env_transport("https://us-1.api.gong.io")._pool).__name__
    monkeypatch.setenv("NO_PROXY", "api.gong.io")
    assert "Proxy" not in type(env_transport("https://us-1.api.gong.io")._pool).__name__


def test_today_with_a_mark_reads_from_the_mark_minus_the_lookback(sandbox, connection, data):
    now = clock.now_epoch()
    mark = now - 600
    today_window = window(0, 0)
    result, _ = run(connection, today_window, hwm=mark, now=now, lookback_hours=0.5)
    since = max(today_window.start_epoch, mark - 1800)
    assert result.mode == "incremental" and result.high_water_mark == now
    assert ids(result) == {c.id for c in data.expected(since, now)}
    (listing,) = result.listings
    assert (listing.start, listing.end) == (since, now)


# ------------------------------------------------------------------ the asset
def test_asset_run_rerun_and_rename_keep_doc_ids(harness, sandbox, monkeypatch, data):
    use_gong(harness, sandbox, monkeypatch, options="{access: all, lookback_hours: 2}")
    first = harness.sync(gong_asset, [day(-1)])
    docs = harness.documents(first, "gong")
    meta = harness.metadata(first, "gong")
    assert meta["mode"] == "full" and meta["documents_written"] == len(docs) > 0
    for key in ("calls_fetched", "pages_read", "calls_shared", "transcripts_fetched",
                "calls_with_crm", "api_calls"):  # fmt: skip
        assert f"run_{key}" in meta and key not in meta
    assert {d.access for d in docs} == {(ACCESS_ALL,)} | {
        d.access for d in docs if d.metadata["is_private"]
    }
    renamed = docs[0].metadata["call_id"]
    data.rename(renamed, "Renamed call")
    again = harness.documents(harness.sync(gong_asset, [day(-1)]), "gong")
    assert sorted(d.doc_id for d in again) == sorted(d.doc_id for d in docs)
    (doc,) = [d for d in again if d.metadata["call_id"] == renamed]
    assert doc.title == "Renamed call"


def test_the_asset_carries_a_call_not_transcribed_yet_until_it_is(harness, sandbox, monkeypatch):
    from sync_pipelines_sandbox.gong.contract import CONTRACT

    use_gong(harness, sandbox, monkeypatch)
    doc_id, make_ready = CONTRACT.not_ready(sandbox)
    first = harness.sync(gong_asset, [day(-3), day(-1)])
    assert doc_id not in {d.doc_id for d in harness.documents(first, "gong")}
    assert [p["doc_id"] for p in harness.metadata(first, "gong")["pending"]] == [doc_id]
    still = harness.sync(gong_asset, [day(0)])
    assert doc_id not in {d.doc_id for d in harness.documents(still, "gong")}
    make_ready()
    done = harness.sync(gong_asset, [day(0)])
    (doc,) = [d for d in harness.documents(done, "gong") if d.doc_id == doc_id]
    assert "Transcript:" in doc.text and harness.metadata(done, "gong")["pending"] == []
