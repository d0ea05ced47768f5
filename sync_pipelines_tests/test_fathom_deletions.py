"""Fathom deletions: a run lists exactly the meetings created in its range (a deleted one
absent, one still processing present), the daily reconciliation lists exactly what still
exists with the content-free listing, a failing page lists nothing, and a meeting deleted in
Fathom leaves the index after the reconciliation."""

from datetime import timedelta

import pytest
from dagster import materialize
from sync_pipelines_sandbox.fathom.data import SANDBOX_FATHOM_API_KEY, FathomData

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourceError
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.fathom import SOURCE
from sync_pipelines.sources.fathom.client import FathomResource
from sync_pipelines.sources.fathom.sync import FathomOptions, FathomSync
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines.sources.registry import reconcile_asset, source_asset
from sync_pipelines_tests.conftest import day, today

KEY_ENV = "TEST_FATHOM_DELETIONS_KEY"
SCOPE = "fathom:acme:"


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


def existing(data: FathomData, start: float, end: float) -> set[str]:
    """Every meeting Fathom has created in [start, end), processing or not."""
    return {f"{SCOPE}{r.recording_id}" for r in data.recordings() if start <= r.created < end}


def people(sandbox, n):
    return [p for p in sandbox.company.people if not p.is_bot][:n]


def sync(connection, win):
    with FathomResource(rate_per_s=0, timeout_s=10).client_for(connection) as client:
        return FathomSync(client, FathomOptions(), "acme").run(win, None)


def reconcile_run(connection, **settings) -> SourceRun:
    resource = FathomResource(rate_per_s=0, timeout_s=10, **settings)
    return SourceRun(
        context=None,
        connection=connection,
        resource=resource,
        client=resource.client_for(connection),
        options=FathomOptions(),
        window=reconcile_window("acme", SOURCE.reconcile.days),
        previous=Previous(),
    )


def test_a_run_lists_exactly_its_range(sandbox, connection, data):
    past = window(-3, -1)
    meetings = [r for r in data.recordings() if past.start_epoch <= r.created < past.end_epoch]
    deleted = {meetings[0].recording_id, meetings[-1].recording_id}
    for recording_id in deleted:
        sandbox.fathom.delete_meeting(recording_id)
    busy = data.add_meeting(
        "Still processing",
        people(sandbox, 2),
        start=past.start_epoch + 3600,
        ready_at=clock.now_epoch() + 3600,
    )
    edge = data.add_meeting(
        "Saved at midnight", people(sandbox, 2), lag_s=0, start=past.start_epoch - 120, minutes=2
    )
    after = data.add_meeting(
        "Saved at the next midnight",
        people(sandbox, 2),
        lag_s=0,
        start=past.end_epoch - 120,
        minutes=2,
    )
    assert edge.created == past.start_epoch and after.created == past.end_epoch
    began = clock.now_epoch()
    result = sync(connection, past)
    (listing,) = result.listings
    assert listing.scope == SCOPE and (listing.start, listing.end) == (
        past.start_epoch,
        past.end_epoch,
    )
    assert began <= listing.listed_at <= clock.now_epoch()
    assert listing.doc_ids == existing(data, past.start_epoch, past.end_epoch)
    assert not listing.doc_ids & {f"{SCOPE}{i}" for i in deleted}
    assert f"{SCOPE}{busy.recording_id}" in listing.doc_ids
    assert f"{SCOPE}{edge.recording_id}" in listing.doc_ids
    assert f"{SCOPE}{after.recording_id}" not in listing.doc_ids
    assert {d.doc_id for d in result.documents} == listing.doc_ids - {f"{SCOPE}{busy.recording_id}"}


def test_the_reconciliation_lists_exactly_what_exists_without_content(sandbox, connection, data):
    gone = data.recordings()[3]
    sandbox.fathom.delete_meeting(gone.recording_id)
    busy = data.add_meeting(
        "Still processing", people(sandbox, 2), ready_at=clock.now_epoch() + 3600
    )
    run = reconcile_run(connection)
    sent = []
    request = run.client.http.request
    run.client.http.request = lambda method, path, **kw: (
        sent.append(kw["params"]) or request(method, path, **kw)
    )
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.scope == SCOPE and listing.start == run.window.start_epoch
    assert listing.doc_ids == existing(data, listing.start, listing.end)
    assert f"{SCOPE}{gone.recording_id}" not in listing.doc_ids
    assert f"{SCOPE}{busy.recording_id}" in listing.doc_ids
    assert sent and not any(k.startswith("include_") for params in sent for k in params)
    pages = -(-len(listing.doc_ids) // 10)
    assert sandbox.knobs.calls["meetings"] == 2 * pages  # two passes, unioned


@pytest.mark.parametrize("kind", ["500", "malformed", "html", "400"])
def test_a_later_page_failing_makes_the_lister_raise(sandbox, connection, monkeypatch, kind):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    run = reconcile_run(connection, max_attempts=2)
    sandbox.knobs.inject("meetings", kind, count=50, after=1)
    with pytest.raises(SourceError, match="fathom connection 'acme'"):
        SOURCE.reconcile.list_ids(run)
    assert sandbox.knobs.calls["meetings"] >= 2


def test_a_meeting_deleted_in_fathom_leaves_the_index_after_the_reconciliation(
    harness, sandbox, monkeypatch, data
):
    monkeypatch.setenv(KEY_ENV, SANDBOX_FATHOM_API_KEY)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: fathom\n"
        f"    base_url: {sandbox.urls['fathom']}\n    credentials: {{api_key: {KEY_ENV}}}\n"
    )
    harness.extra_resources = {"fathom": FathomResource(rate_per_s=0, timeout_s=10)}
    asset, reconcile = source_asset("fathom"), reconcile_asset("fathom")
    index = [
        build_vector_index([asset, reconcile]),
        asset.to_source_asset(),
        reconcile.to_source_asset(),
    ]

    def indexed():
        result = materialize(
            index,
            selection=["vector_index"],
            instance=harness.instance,
            resources=harness.resources(),
        )
        return harness.metadata(result, "vector_index")

    written = harness.documents(harness.sync(asset, [day(-3), day(-1)]), "fathom")
    indexed()
    victim = written[0].metadata["meeting_id"]
    sandbox.fathom.delete_meeting(int(victim))
    materialize(
        [reconcile], partition_key="acme", instance=harness.instance, resources=harness.resources()
    )
    meta = indexed()
    assert meta["documents_deleted"] == 1 and meta["chunks_embedded"] == 0
    store = harness.vector_store.build()
    held = {vid.split("#")[0] for vid in store.ids()}
    assert f"{SCOPE}{victim}" not in held and {d.doc_id for d in written[1:]} <= held
