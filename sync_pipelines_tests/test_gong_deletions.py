"""Gong deletions: a run lists exactly the calls of its range (a deleted one absent, one not
transcribed yet present), the daily reconciliation lists exactly what still exists with the
cheap `GET /v2/calls`, neither lists anything it cannot prove complete, and a call deleted in
Gong leaves the index through the reconciliation."""

from __future__ import annotations

import pytest
from dagster import materialize
from sync_pipelines_sandbox.gong.data import GongData

from sync_pipelines import clock, resilience
from sync_pipelines.errors import MalformedResponseError, SourceError
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.gong import SOURCE
from sync_pipelines.sources.gong.client import GongClient, GongResource
from sync_pipelines.sources.gong.reconcile import list_calls
from sync_pipelines.sources.gong.sync import GongOptions, GongSync
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.gong_fixtures import (
    SCOPE,
    Scripted,
    client_for,
    fixture_connection,  # noqa: F401 (the fixture `connection`)
    fixture_data,  # noqa: F401 (the fixture `data`)
    people,
    use_gong,
    window,
)


def existing(data: GongData, start: float, end: float) -> set[str]:
    """Every call Gong has started in [start, end), transcribed or not."""
    return {f"{SCOPE}{c.id}" for c in data.between(start, end)}


def delete_two(sandbox, data, start: float, end: float) -> set[str]:
    calls = data.between(start, end)
    gone = {calls[0].id, calls[-1].id}
    for call_id in gone:
        sandbox.gong.delete_call(call_id)
    return {f"{SCOPE}{i}" for i in gone}


# ------------------------------------------------------------------ the sync's listing
def test_a_run_lists_exactly_its_range_deleted_calls_absent_pending_present(
    sandbox, connection, data
):
    sandbox.gong.page_size = 10
    past = window(-3, -1)
    deleted = delete_two(sandbox, data, past.start_epoch, past.end_epoch)
    busy = data.add_call(people(sandbox, 2), started=past.start_epoch + 36_000,
                         ready_at=clock.now_epoch() + 3600)  # fmt: skip
    began = clock.now_epoch()
    with client_for(connection, page_size=10) as client:
        result = GongSync(client, GongOptions(), "acme").run(past, None)
    (listing,) = result.listings
    assert listing.scope == SCOPE
    assert (listing.start, listing.end) == (past.start_epoch, past.end_epoch)
    assert began <= listing.listed_at <= clock.now_epoch()
    assert listing.doc_ids == existing(data, past.start_epoch, past.end_epoch)
    assert sandbox.knobs.calls["extensive"] >= 3 and not listing.doc_ids & deleted
    assert f"{SCOPE}{busy.id}" in listing.doc_ids
    assert {d.doc_id for d in result.documents} == listing.doc_ids - {f"{SCOPE}{busy.id}"}


def test_a_run_failing_on_a_later_page_answers_nothing(sandbox, connection, monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    sandbox.gong.page_size = 10
    sandbox.knobs.inject("extensive", "500", count=10, after=1)
    with (
        client_for(connection, max_attempts=2) as client,
        pytest.raises(SourceError, match="gong connection 'acme'"),
    ):
        GongSync(client, GongOptions(), "acme").run(window(-3, -1), None)


# ------------------------------------------------------------------ the reconciliation
def reconcile_run(connection, **settings) -> SourceRun:
    """The run SOURCE.reconcile gets over its declared window, on the emulator, unpaced."""
    resource = GongResource(rate_per_s=0, timeout_s=10, **settings)
    return SourceRun(
        context=None,
        connection=connection,
        resource=resource,
        client=resource.client_for(connection),
        options=GongOptions(),
        window=reconcile_window("acme", SOURCE.reconcile.days),
        previous=Previous(),
    )


def test_the_reconciliation_lists_exactly_what_exists_with_the_cheap_listing(
    sandbox, connection, data
):
    sandbox.gong.page_size = 25
    deleted = delete_two(sandbox, data, window(-3, -1).start_epoch, window(-1, -1).end_epoch)
    busy = data.add_call(people(sandbox, 2), ready_at=clock.now_epoch() + 3600)
    run = reconcile_run(connection)
    began = clock.now_epoch()
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.scope == SCOPE and listing.start == run.window.start_epoch
    assert began <= listing.end <= listing.listed_at <= clock.now_epoch()
    assert listing.doc_ids == existing(data, listing.start, listing.end)
    assert not listing.doc_ids & deleted and f"{SCOPE}{busy.id}" in listing.doc_ids
    served = {route: n for route, n in sandbox.knobs.calls.items() if n}
    assert served == {"calls": -(-len(listing.doc_ids) // 25)}  # ids only: no transcripts
    assert (SOURCE.reconcile.days, SOURCE.reconcile.cron) == (30, "10 3 * * *")


@pytest.mark.parametrize("kind", ["500", "502", "malformed", "html", "400"])
def test_a_second_page_failing_makes_the_lister_raise(sandbox, connection, monkeypatch, kind):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    sandbox.gong.page_size = 25
    run = reconcile_run(connection, max_attempts=2)
    sandbox.knobs.inject("calls", kind, count=50, after=1)
    with pytest.raises(SourceError, match="gong connection 'acme'"):
        SOURCE.reconcile.list_ids(run)
    assert sandbox.knobs.calls["calls"] >= 2


def test_a_listing_item_nested_under_metadata_is_read_too():
    nested = {"calls": [{"metaData": {"id": "7", "started": "2026-11-17T16:30:00-08:00"}}]}
    listing = list_calls(GongClient(Scripted(nested)), "acme", 0.0, 2e9, 2e9)
    assert listing.doc_ids == {"gong:acme:7"}


def test_a_window_without_calls_lists_none(connection):
    with client_for(connection) as client:
        listing = list_calls(client, "acme", 1_735_776_000.0, 1_735_862_400.0, 1_735_862_400.0)
    assert listing.doc_ids == frozenset()


@pytest.mark.parametrize(
    "page",
    [
        {"calls": [{"id": "1"}]},
        {"calls": [{"started": "2026-11-18T10:00:00Z"}]},
        {"calls": [{"id": "1", "started": "yesterday"}]},
        {"records": {}},
    ],
    ids=["no start", "no id", "bad start", "no calls"],
)
def test_a_malformed_id_page_makes_the_lister_raise(page):
    with pytest.raises(MalformedResponseError):
        list_calls(GongClient(Scripted(page)), "acme", 0.0, 1e9, 1e9)


# ------------------------------------------------------------------ end to end
def index(harness) -> dict:
    upstream = [registry.source_asset("gong"), registry.reconcile_asset("gong")]
    result = materialize(
        [build_vector_index(upstream), *(a.to_source_asset() for a in upstream)],
        selection=["vector_index"],
        instance=harness.instance,
        resources=harness.resources(),
    )
    return harness.metadata(result, "vector_index")


def test_a_call_deleted_in_gong_leaves_the_index_by_the_reconciliation(
    harness, sandbox, data, monkeypatch
):
    use_gong(harness, sandbox, monkeypatch, page_size=50)
    harness.sync(registry.source_asset("gong"), [day(-3), day(-1)])
    index(harness)
    gone = data.between(window(-2, -2).start_epoch, window(-2, -2).end_epoch)[0]
    sandbox.gong.delete_call(gone.id)
    materialize([registry.reconcile_asset("gong")], partition_key="acme",
                instance=harness.instance, resources=harness.resources())  # fmt: skip
    meta = index(harness)
    assert meta["documents_deleted"] == 1 and meta["chunks_embedded"] == 0
