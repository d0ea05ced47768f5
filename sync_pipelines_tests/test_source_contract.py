"""The contract every source passes against its emulator: paging, 429, 5xx, an empty window,
idempotent re-runs, bad credentials, month backfills in few runs, records not ready yet
(fetched again by later runs, written once ready, never empty), and deletions: a record
deleted in the emulator leaves the index after the sync or the reconciliation that sees it,
and a listing that fails part-way deletes nothing."""

import math
import time
from datetime import timedelta

import pytest
from dagster import DagsterEventType

from dagster import materialize

from sync_pipelines.documents import DocumentFiles
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines_tests.conftest import day, today
from sync_pipelines.sources import pending as pending_items
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import PENDING_KEY
from sync_pipelines_sandbox.contract import SourceContract, contract_for
from sync_pipelines_tests.test_crm_contract import THROWAWAY, throwaway_contract
from sync_pipelines_tests.test_tombstones_end_to_end import remove_source

pytestmark = pytest.mark.integration
# Every declared source, whether or not it has an entry: one without fails every check below;
# plus a throw-away CRM source (test_crm_contract.py), so the checks hold for the shared CRM
# loader before and whatever the real CRM sources do.
SOURCES = registry.names()
GOOD_ENV, BAD_ENV = "CONTRACT_SECRET_GOOD", "CONTRACT_SECRET_BAD"


@pytest.fixture(params=[*SOURCES, THROWAWAY])
def source(request, harness, tmp_path, monkeypatch) -> SourceContract:
    if request.param == THROWAWAY:
        contract = throwaway_contract(harness, tmp_path, monkeypatch)
        request.addfinalizer(lambda: remove_source(THROWAWAY, monkeypatch))
    else:
        contract = contract_for(request.param)
    return use_contract(harness, monkeypatch, contract)


def use_contract(harness, monkeypatch, contract: SourceContract) -> SourceContract:
    """The harness set up for one source's contract: its secrets, an `acme` connection that
    works and a `broken` one with a bad secret, and its resources."""
    monkeypatch.setenv(GOOD_ENV, contract.good_secret)
    monkeypatch.setenv(BAD_ENV, "not-a-valid-secret")
    for name, value in contract.extra_env.items():
        monkeypatch.setenv(name, value)
    harness.registry.write_text(
        "connections:\n"
        + contract.registry_entry(harness.sandbox, "acme", GOOD_ENV)
        + contract.registry_entry(harness.sandbox, "broken", BAD_ENV)
    )
    harness.extra_resources = contract.resources(harness.sandbox)
    return contract


def doc_ids(harness, source, result) -> set[str]:
    return {d.doc_id for d in harness.documents(result, source.name)}


def data_range(source):
    first, last = source.data_days
    start = today() + timedelta(days=first)
    end = today() + timedelta(days=last + 1)
    return [day(first), day(last)], start, end


def test_multi_page_range_matches_ground_truth(harness, source):
    days, start, end = data_range(source)
    result = harness.sync(source.asset, days)
    expected = source.expected_ids(harness.sandbox.company, start, end)
    assert len(expected) > 0
    assert doc_ids(harness, source, result) == expected
    assert harness.sandbox.knobs.calls[source.list_route] > 1, "the listing must span pages"
    meta = harness.metadata(result, source.name)
    assert meta["run_documents_written"] == len(expected)
    for key in ("run_api_calls", "run_rate_limited_429", "run_retries", "run_duration_s",
                "high_water_mark"):
        assert key in meta


def test_rerun_is_idempotent(harness, source):
    """A re-run yields the same documents; a source that detects changes (a CRM full-refresh
    table: a hash per row) writes again only those that changed, and counts the others as
    `documents_unchanged`: here none changed."""
    days, _, _ = data_range(source)
    first = harness.documents(harness.sync(source.asset, days), source.name)
    rerun = harness.sync(source.asset, days)
    second = harness.documents(rerun, source.name)
    unchanged = harness.metadata(rerun, source.name).get("run_documents_unchanged", 0)
    assert len(second) + unchanged == len(first)
    again = {d.doc_id for d in second}
    assert sorted(second, key=lambda d: d.doc_id) == sorted(
        (d for d in first if d.doc_id in again), key=lambda d: d.doc_id
    )


def test_429_with_retry_after_is_waited_out(harness, source):
    """A rate-limit answer is waited out, never a failure: over HTTP a 429 whose Retry-After
    says 1 s; a SQL source's server answers "too many connections" (MySQL error 1040), which
    carries no wait, and the client backs off by the shared rule (resilience.rate_limit_wait:
    1 s for the first). Either way the run lasts at least 1 s, counts a 429 and loses
    nothing."""
    days, start, end = data_range(source)
    harness.sandbox.knobs.inject(source.list_route, "429", count=1, retry_after=1)
    started = time.monotonic()
    result = harness.sync(source.asset, days)
    assert time.monotonic() - started >= 1.0
    assert harness.metadata(result, source.name)["run_rate_limited_429"] >= 1
    assert doc_ids(harness, source, result) == source.expected_ids(
        harness.sandbox.company, start, end
    )


def test_5xx_is_retried(harness, source):
    days, start, end = data_range(source)
    harness.sandbox.knobs.inject(source.list_route, "500", count=1)
    harness.sandbox.knobs.inject(source.list_route, "503", count=1)
    result = harness.sync(source.asset, days)
    assert harness.metadata(result, source.name)["run_retries"] >= 2
    assert doc_ids(harness, source, result) == source.expected_ids(
        harness.sandbox.company, start, end
    )


def test_empty_window_writes_an_empty_valid_partition(harness, source):
    result = harness.sync(source.asset, ["2025-01-02"])
    meta = harness.metadata(result, source.name)
    (path,) = meta["documents_files"]
    assert DocumentFiles.read(path) == []
    assert meta["documents_written"] == 0 and meta["run_retries"] == 0


def test_bad_credentials_fail_fast(harness, source):
    result = harness.sync(source.asset, [day(-1)], connection="broken", raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE][-1]
    message = failure.step_failure_data.error.message
    assert f"{source.name} connection 'broken'" in message
    assert "not-a-valid-secret" not in message
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert sum(harness.sandbox.knobs.calls.values()) <= 3, "auth errors are not retried"


def test_month_backfill_runs_in_at_most_three_runs(harness, source):
    policy = source.asset.backfill_policy
    assert policy is not None and math.ceil(31 / policy.max_partitions_per_run) <= 3
    # One run covers a whole policy-sized range of days with one range query.
    days = [day(-policy.max_partitions_per_run + 1), day(0)]
    result = harness.sync(source.asset, days)
    assert result.success
    assert len(result.asset_materializations_for_node(source.name)) == policy.max_partitions_per_run


def reconcile_asset(source):
    if source.name not in registry.reconcile_assets():
        return None
    return registry.reconcile_asset(source.name)


def index(harness, source) -> dict:
    """vector_index over the source's asset and its reconciliation, on the harness's store."""
    upstream = [a for a in (source.asset, reconcile_asset(source)) if a is not None]
    result = materialize(
        [build_vector_index(upstream), *(a.to_source_asset() for a in upstream)],
        selection=["vector_index"],
        instance=harness.instance,
        resources=harness.resources(),
    )
    return harness.metadata(result, "vector_index")


def held(harness) -> set[str]:
    """The documents the index holds: by its ledger and by the store itself."""
    store = harness.vector_store.build()
    in_store = {vid.split("#")[0] for vid in store.ids()}
    in_ledger = {vid.split("#")[0] for vid in harness.vector_store.ledger(store).all_ids()}
    assert in_store == in_ledger
    return in_store


def see_deletion(harness, source, days, raise_on_error=True):
    """Run what shows the source's deletions: a re-sync of the days, or its reconciliation."""
    if source.deletion_seen_by == "sync":
        return harness.sync(source.asset, days, raise_on_error=raise_on_error)
    return materialize(
        [reconcile_asset(source)],
        partition_key="acme",
        instance=harness.instance,
        resources=harness.resources(),
        raise_on_error=raise_on_error,
    )


def deletable(source) -> SourceContract:
    assert source.delete_record is not None, f"{source.name}'s contract has no delete_record"
    assert source.deletion_seen_by in {"sync", "reconcile"}
    if source.deletion_seen_by == "reconcile":
        assert reconcile_asset(source) is not None, f"{source.name} declares no reconciliation"
    return source


def test_a_record_deleted_upstream_leaves_the_index(harness, source):
    source = deletable(source)
    days, _, _ = data_range(source)
    harness.sync(source.asset, days)
    index(harness, source)
    before = held(harness)
    doc_id = source.delete_record(harness.sandbox)
    assert doc_id in before, f"{doc_id} was never indexed"
    see_deletion(harness, source, days)
    meta = index(harness, source)
    assert meta["documents_deleted"] == 1 and meta["chunks_embedded"] == 0
    assert held(harness) == before - {doc_id}


def test_a_listing_that_fails_part_way_deletes_nothing(harness, source):
    source = deletable(source)
    days, _, _ = data_range(source)
    harness.sync(source.asset, days)
    index(harness, source)
    before = held(harness)
    source.delete_record(harness.sandbox)
    route = source.reconcile_route if source.deletion_seen_by == "reconcile" else source.list_route
    assert route is not None, f"{source.name}'s contract names no listing route"
    # Its first page is served; the second answers 400, which no retry changes.
    harness.sandbox.knobs.inject(route, "400", count=50, after=1)
    result = see_deletion(harness, source, days, raise_on_error=False)
    assert not result.success
    assert harness.sandbox.knobs.calls[route] >= 2, "the listing must have reached page 2"
    assert index(harness, source)["documents_deleted"] == 0
    assert held(harness) == before


def pending_ids(harness, source, result) -> set[str]:
    """The doc ids the run left pending (every partition of a run stores the whole list)."""
    stored = harness.metadata(result, source.name)[PENDING_KEY]
    return {item.doc_id for item in pending_items.from_json(stored)}


def test_a_record_not_ready_waits_and_lands_once_ready(harness, source):
    days, start, end = data_range(source)
    if source.not_ready is None:  # records are complete when listed: nothing ever waits
        result = harness.sync(source.asset, days)
        assert pending_ids(harness, source, result) == set()
        return
    complete = source.expected_ids(harness.sandbox.company, start, end)
    doc_id, make_ready = source.not_ready(harness.sandbox)
    assert doc_id in complete
    first = harness.sync(source.asset, days)
    assert doc_id not in doc_ids(harness, source, first), "an unready record is never written"
    assert pending_ids(harness, source, first) == {doc_id}
    # Still not ready: a later run of another day asks again and keeps waiting.
    later = harness.sync(source.asset, [day(0)])
    assert doc_id not in doc_ids(harness, source, later)
    assert pending_ids(harness, source, later) == {doc_id}
    make_ready()
    ready = harness.sync(source.asset, [day(0)])
    written = [d for d in harness.documents(ready, source.name) if d.doc_id == doc_id]
    assert len(written) == 1 and written[0].text.strip()
    assert pending_ids(harness, source, ready) == set()


@pytest.mark.parametrize("name", SOURCES)
def test_every_declared_source_has_a_contract_entry(name):
    assert contract_for(name).name == name


def test_a_source_without_a_contract_entry_is_named_with_the_file_to_add():
    with pytest.raises(LookupError, match=r"source 'nosuchsource' has no contract entry: add "
                       r"sandbox/sync_pipelines_sandbox/nosuchsource/contract.py"):
        contract_for("nosuchsource")
