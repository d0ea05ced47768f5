"""Fireflies deletions reach the sync's output: a run lists exactly the meetings of its range
(a deleted one absent, one still processing present), the daily reconciliation lists exactly
what still exists, and neither lists anything it cannot prove complete."""

from datetime import timedelta
from math import ceil

import pytest
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines_sandbox.server import Sandbox

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import MalformedResponseError, SourceError
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.fireflies import SOURCE
from sync_pipelines.sources.fireflies.client import (
    FirefliesClient,
    FirefliesResource,
    date_bounds,
)
from sync_pipelines.sources.fireflies.reconcile import list_meetings
from sync_pipelines.sources.fireflies.sync import FirefliesOptions, FirefliesSync
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines_tests.conftest import day, today

KEY_ENV = "TEST_FIREFLIES_DELETIONS_KEY"
SCOPE = "fireflies:acme:"


@pytest.fixture
def connection(sandbox, monkeypatch) -> Connection:
    monkeypatch.setenv(KEY_ENV, SANDBOX_FIREFLIES_API_KEY)
    return Connection("acme", "fireflies", credentials={"api_key": KEY_ENV},
                      base_url=sandbox.urls["fireflies"])


@pytest.fixture
def data(sandbox) -> FirefliesData:
    return FirefliesData.of(sandbox.company)


def client_for(connection, page_size=10, **settings) -> FirefliesClient:
    resource = FirefliesResource(rate_per_s=0, page_size=page_size, timeout_s=10, **settings)
    return resource.client_for(connection)


def window(first: int, last: int) -> SyncWindow:
    days = tuple(day(o) for o in range(first, last + 1))
    return SyncWindow("acme", today() + timedelta(days=first),
                      today() + timedelta(days=last + 1), days)


def existing(data: FirefliesData, start: float, end: float) -> set[str]:
    """Every meeting Fireflies has dated in [start, end), processing or not."""
    return {f"{SCOPE}{m.id}" for m in data.between(ceil(start * 1000), None) if m.date < end}


def people(sandbox, n):
    return [p for p in sandbox.company.people if not p.is_bot][:n]


def delete_two(sandbox, data, start: float, end: float) -> set[str]:
    """Deletes the newest and the oldest meeting of [start, end); answers their doc ids."""
    meetings = [m for m in data.between(ceil(start * 1000), None) if m.date < end]
    gone = {meetings[0].id, meetings[-1].id}
    for meeting_id in gone:
        sandbox.fireflies.delete_meeting(meeting_id)
    return {f"{SCOPE}{i}" for i in gone}


# ------------------------------------------------------------------ the emulator
def test_a_deleted_meeting_is_gone_from_listings_and_not_found_by_id(sandbox, connection, data):
    past = window(-3, -1)
    meeting = data.between(ceil(past.start_epoch * 1000), None)[-1]
    sandbox.fireflies.delete_meeting(meeting.id)
    with client_for(connection) as client:
        listed = {t["id"] for t in client.transcript_ids(past.start_epoch, past.end_epoch)}
        assert listed and meeting.id not in listed
        assert client.transcript(meeting.id) is None  # Fireflies' object_not_found
    assert sandbox.knobs.calls["transcripts"] == sandbox.knobs.calls["transcript"] == 1


# ------------------------------------------------------------------ the sync's listing
def test_a_run_lists_exactly_its_range_deleted_meetings_absent_processing_present(
    sandbox, connection, data
):
    past = window(-3, -1)
    deleted = delete_two(sandbox, data, past.start_epoch, past.end_epoch)
    noon = (today() - timedelta(days=2)).timestamp() + 12 * 3600
    busy = data.add_meeting("Still transcribing", people(sandbox, 2), date=noon,
                            ready_at=clock.now_epoch() + 3600)
    began = clock.now_epoch()
    with client_for(connection) as client:
        result = FirefliesSync(client, FirefliesOptions(), "acme").run(past, None)
    (listing,) = result.listings
    assert listing.scope == SCOPE
    assert (listing.start, listing.end) == (past.start_epoch, past.end_epoch)
    assert began <= listing.listed_at <= clock.now_epoch()
    assert listing.doc_ids == existing(data, past.start_epoch, past.end_epoch)
    assert client.pages_read >= 3  # the listing spans pages
    assert not listing.doc_ids & deleted
    assert f"{SCOPE}{busy.id}" in listing.doc_ids  # it exists, only its transcript waits
    assert [p.id for p in result.pending] == [busy.id]
    assert {d.doc_id for d in result.documents} == listing.doc_ids - {f"{SCOPE}{busy.id}"}


def test_the_listing_range_holds_its_edges_whatever_fromdate_and_todate_include(
    sandbox, connection, data
):
    # Both bounds reach one millisecond beyond [since, until), so inclusive or exclusive,
    # Fireflies lists every whole millisecond of the range.
    assert date_bounds(1_800_000_000.0, 1_800_086_400.0) == {
        "fromDate": "2027-01-15T07:59:59.999Z",
        "toDate": "2027-01-16T08:00:00.000Z",
    }
    assert date_bounds(1_800_000_000.0004, 1_800_000_001.0004) == {
        "fromDate": "2027-01-15T08:00:00.000Z",
        "toDate": "2027-01-15T08:00:01.001Z",
    }
    one = window(-2, -2)
    who = people(sandbox, 2)
    first = data.add_meeting("At midnight", who, date=one.start_epoch)
    last = data.add_meeting("Just before midnight", who, date=one.end_epoch - 0.001)
    after = data.add_meeting("Next midnight", who, date=one.end_epoch)
    with client_for(connection) as client:
        (listing,) = FirefliesSync(client, FirefliesOptions(), "acme").run(one, None).listings
    assert {f"{SCOPE}{first.id}", f"{SCOPE}{last.id}"} <= listing.doc_ids
    assert f"{SCOPE}{after.id}" not in listing.doc_ids
    assert listing.doc_ids == existing(data, one.start_epoch, one.end_epoch)


def crowd(sandbox, data) -> None:
    """50 more meetings two days ago: the reconciliation's listing (pages of 50) spans pages."""
    noon = (today() - timedelta(days=2)).timestamp() + 12 * 3600
    for n in range(50):
        data.add_meeting(f"Standup {n}", people(sandbox, 2), date=noon + n * 60)


def shift_after_first_page(client: FirefliesClient, sandbox, deleted: list[str]) -> None:
    """The owner deletes two meetings of the first page while the listing is paged: every
    later meeting moves two places forward."""
    read_page = client.transcripts_page

    def page(query, variables):
        found = read_page(query, variables)
        if variables["skip"] == 0:
            for transcript in found[:2]:
                sandbox.fireflies.delete_meeting(transcript["id"])
                deleted.append(transcript["id"])
        return found

    client.transcripts_page = page


def test_a_listing_shifted_by_a_deletion_while_paged_is_not_emitted(sandbox, connection, data):
    past = window(-3, -1)
    before = existing(data, past.start_epoch, past.end_epoch)
    deleted: list[str] = []
    with client_for(connection) as client:
        shift_after_first_page(client, sandbox, deleted)
        result = FirefliesSync(client, FirefliesOptions(), "acme").run(past, None)
    written = {d.doc_id for d in result.documents}
    # One meeting slid past the overlap: the documents read are good, but a listing built
    # from them would delete a meeting that exists.
    assert len(before - written) == 1 and (before - written) <= existing(
        data, past.start_epoch, past.end_epoch
    )
    assert result.listings == []
    crowd(sandbox, data)
    with client_for(connection) as client:
        shift_after_first_page(client, sandbox, deleted)
        with pytest.raises(SourceError, match="deleted while the transcripts were paged"):
            list_meetings(client, "acme", past.start_epoch, past.end_epoch, clock.now_epoch())


def test_pages_of_one_meeting_prove_nothing(sandbox, connection):
    with client_for(connection, page_size=1) as client:
        result = FirefliesSync(client, FirefliesOptions(), "acme").run(window(-1, -1), None)
    assert len(result.documents) > 1 and result.listings == []


# ------------------------------------------------------------------ the reconciliation
def reconcile_run(connection, **settings) -> SourceRun:
    """The run SOURCE.reconcile gets over its declared window, on the emulator, unpaced."""
    resource = FirefliesResource(rate_per_s=0, timeout_s=10, **settings)
    return SourceRun(
        context=None,
        connection=connection,
        resource=resource,
        client=resource.client_for(connection),
        options=FirefliesOptions(),
        window=reconcile_window("acme", SOURCE.reconcile.days),
        previous=Previous(),
    )


def test_the_reconciliation_lists_exactly_what_exists_ids_and_dates_only(
    sandbox, connection, data
):
    deleted = delete_two(sandbox, data, window(-3, -1).start_epoch, window(-1, -1).end_epoch)
    busy = data.add_meeting("Still transcribing", people(sandbox, 2),
                            ready_at=clock.now_epoch() + 3600)
    run = reconcile_run(connection)
    queries = []
    send = run.client.query
    run.client.query = lambda op, query, variables: queries.append(query) or send(
        op, query, variables)
    began = clock.now_epoch()
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.scope == SCOPE and listing.start == run.window.start_epoch
    assert began <= listing.end <= listing.listed_at <= clock.now_epoch()  # up to now
    assert listing.doc_ids == existing(data, listing.start, listing.end)
    assert not listing.doc_ids & deleted and f"{SCOPE}{busy.id}" in listing.doc_ids
    assert queries and all("{ id date }" in q and "sentences" not in q for q in queries)
    assert sandbox.knobs.calls["transcripts"] == len(queries)


@pytest.mark.parametrize("kind", ["500", "502", "malformed", "html"])
def test_a_second_page_failing_beyond_the_retries_makes_the_lister_raise(
    sandbox, connection, data, monkeypatch, kind
):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    crowd(sandbox, data)
    run = reconcile_run(connection, max_attempts=2)
    sandbox.knobs.inject("transcripts", kind, count=50, after=1)
    with pytest.raises(SourceError, match="fireflies connection 'acme'"):
        SOURCE.reconcile.list_ids(run)
    assert sandbox.knobs.calls["transcripts"] >= 3  # page 1, then page 2 retried


def test_a_graphql_server_error_on_a_later_page_makes_the_lister_raise(
    sandbox, connection, data, monkeypatch
):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    crowd(sandbox, data)
    run = reconcile_run(connection, max_attempts=2)
    read_page = run.client.transcripts_page

    def page(query, variables):
        if variables["skip"]:
            sandbox.fireflies.inject_error("internal_server_error", count=2)
        return read_page(query, variables)

    run.client.transcripts_page = page
    with pytest.raises(SourceError, match="Fireflies server error"):
        SOURCE.reconcile.list_ids(run)


class ScriptedGraphQL:
    """The HTTP layer of a FirefliesClient, answering the listing from scripted pages."""

    label = "fireflies connection 'acme'"

    def __init__(self, *pages):
        self.pages = list(pages)
        self.stats = CallStats()

    def post(self, path, json, headers):
        return {"data": {"transcripts": self.pages.pop(0)}}


@pytest.mark.parametrize(
    "page",
    [None, {"id": "a"}, [{"date": 1}], [{"id": "a", "date": "yesterday"}], [{"id": "a"}]],
    ids=["null", "object", "no id", "bad date", "no date"],
)
def test_a_malformed_page_makes_the_lister_raise(page):
    client = FirefliesClient(ScriptedGraphQL(page))
    with pytest.raises(MalformedResponseError):
        list_meetings(client, "acme", 0.0, 1e9, 1e9)


def test_a_30_day_reconciliation_of_the_demo_company_costs_its_id_pages(monkeypatch):
    company = Company.generate(seed=7, messages=3000, days=5)  # the demo's company
    monkeypatch.setenv(KEY_ENV, SANDBOX_FIREFLIES_API_KEY)
    with Sandbox(company=company) as sandbox:
        connection = Connection("acme", "fireflies", credentials={"api_key": KEY_ENV},
                                base_url=sandbox.urls["fireflies"])
        run = reconcile_run(connection)
        (listing,) = SOURCE.reconcile.list_ids(run)
        served = {route: calls for route, calls in sandbox.knobs.calls.items() if calls}
    meetings = len(listing.doc_ids)
    assert meetings == len(FirefliesData.of(company).meetings()) == 120
    # Pages of 50, each after the first starting on the last meeting of the one before.
    assert served == {"transcripts": 3}
