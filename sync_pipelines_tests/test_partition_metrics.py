"""Per-partition metrics as the UI reads them (Dagster's event log): a backfill run records
each day's own figures on its partition, so sums over partitions are true, and the run's
totals only under `run_*` names."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, AssetRecordsFilter, materialize

from sync_pipelines import clock
from sync_pipelines.definitions import vector_index
from sync_pipelines.metrics import metrics_table
from sync_pipelines.partitions import partition_key
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, today, use_fireflies
from sync_pipelines_tests.test_slack_source import expected_documents

fireflies_asset = source_asset("fireflies")

pytestmark = pytest.mark.integration


def backfill_days() -> list[str]:
    """11 days ending today: one run (MAX_DAYS_PER_RUN), days taken from the pinned clock."""
    return [day(o) for o in range(-10, 1)]


@pytest.fixture
def company() -> Company:
    """Data on each of the backfill's 11 days (the suite's default company spans 4)."""
    return Company.generate(seed=23, messages=1100, days=11)


@pytest.fixture
def ff(harness, sandbox, monkeypatch):
    return use_fireflies(harness, sandbox, monkeypatch)


def partitions(harness, asset: str, days: list[str]) -> dict[str, dict]:
    """day -> the metadata of that partition's latest materialization, from Dagster's API."""
    records = harness.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset),
                           asset_partitions=[partition_key(d, "acme") for d in days]),
        limit=1000,
    ).records
    found: dict[str, dict] = {}
    for record in records:  # newest first
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        found.setdefault(record.partition_key.split("|")[1], meta)
    return found


def utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")


def end_of(partition_day: str) -> float:
    start = datetime.strptime(partition_day, "%Y-%m-%d").replace(tzinfo=UTC)
    return (start + timedelta(days=1)).timestamp()


def test_a_backfill_records_each_days_figures_on_its_partition(ff, sandbox):
    backfill = backfill_days()
    result = ff.sync(fireflies_asset, backfill)
    docs = ff.documents(result, "fireflies")
    meetings = FirefliesData.of(sandbox.company).expected(today().timestamp() - 10 * 86_400,
                                                          clock.now_epoch())
    per_day = Counter(utc_day(m.date) for m in meetings)
    stored = partitions(ff, "fireflies", backfill)

    assert sorted(stored) == backfill
    expected = {d: per_day[d] for d in backfill}
    assert {d: stored[d]["documents_written"] for d in backfill} == expected
    assert {d: stored[d]["dagster/row_count"] for d in backfill} == expected
    assert sum(m["documents_written"] for m in stored.values()) == len(docs) == len(meetings)
    assert len({m["documents_written"] for m in stored.values()}) > 1  # no staircase of totals
    for closed in backfill[:-1]:  # a closed day's mark is its end
        assert stored[closed]["high_water_mark"] == end_of(closed)
        assert stored[closed]["high_water_mark_utc"] == f"{utc_day(end_of(closed))}T00:00:00Z"
    assert today().timestamp() < stored[day(0)]["high_water_mark"] <= clock.now_epoch()
    # The run's own figures: the same on every partition, and named as the run's.
    for name in ("api_calls", "retries", "rate_limited_429", "duration_s", "peak_memory_mb",
                 "throttle_wait_s", "meetings_fetched", "pages_read"):
        assert len({m[f"run_{name}"] for m in stored.values()}) == 1
        assert all(name not in m for m in stored.values())
    assert {m["run_documents_written"] for m in stored.values()} == {len(docs)}


def test_slack_replies_count_on_their_parents_day(harness, company):
    days = [day(-3), day(-2), day(-1)]
    docs = harness.documents(harness.sync_slack(days))
    assert any(  # the case that matters: a reply on a later day than its parent
        utc_day(float(d.metadata["ts"])) != utc_day(float(d.metadata["thread_ts"]))
        for d in docs if d.metadata["is_reply"]
    )
    stored = partitions(harness, "slack", days)
    expected = {d: len(expected_documents(company, o, o)) for d, o in zip(days, (-3, -2, -1))}
    assert {d: stored[d]["documents_written"] for d in days} == expected


def test_vector_index_reads_the_runs_file_once_and_the_metrics_table_sums_it(ff):
    result = ff.sync(fireflies_asset, backfill_days())
    docs = ff.documents(result, "fireflies")
    index = materialize(
        [vector_index, fireflies_asset.to_source_asset()],
        selection=[vector_index],
        instance=ff.instance,
        resources=ff.resources(),
    )
    meta = ff.metadata(index, "vector_index")
    assert meta["document_files"] == 1 and meta["documents"] == len(docs)
    (row,) = metrics_table(ff.instance, ["fireflies"]).to_dict("records")
    assert row["documents_written"] == len(docs) and row["api_calls"] > 0
