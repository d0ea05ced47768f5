"""Jobs, schedules, freshness policies and the metrics table generated from the source
declarations."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from dagster import Definitions, build_schedule_context, instance_for_test

from sync_pipelines import clock
from sync_pipelines.metrics import metrics_table
from sync_pipelines.resources import ConnectionRegistry
from sync_pipelines.schedules import partition_days
from sync_pipelines.sources.declaration import Cadence
from sync_pipelines.sources.registry import declaration, declarations
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.freshness_daemon import (
    freshness_daemon,
    freshness_state,
    store_materialization,
)


# The design's cadences and freshness limits (minutes) of the sources it names.
DESIGN_CADENCE = {"slack": 15, "jira": 30, "notion": 60, "fireflies": 60, "tempo": 60}
DESIGN_FRESHNESS = {"slack": 30, "jira": 60, "notion": 120, "fireflies": 120, "tempo": 120}


def test_declarations_follow_the_design_and_stagger_starts():
    rows = {r.name: r for r in declarations()}
    assert {n: rows[n].cadence_minutes for n in DESIGN_CADENCE} == DESIGN_CADENCE
    assert {n: rows[n].freshness_minutes for n in DESIGN_FRESHNESS} == DESIGN_FRESHNESS
    assert rows["slack"].cron == "1,16,31,46 * * * *"
    assert rows["jira"].cron == "5,35 * * * *"
    assert rows["notion"].cron == "11 * * * *"
    starts = [int(m) for r in declarations() for m in r.cron.split()[0].split(",")]
    assert len(starts) == len(set(starts)), "no two sources start at the same minute"
    every_two_hours = replace(declaration("jira"), schedule=Cadence(120, 7, 240))
    assert every_two_hours.cron == "7 */2 * * *"
    with pytest.raises(ValueError, match="must divide 60"):
        replace(declaration("jira"), schedule=Cadence(25, 5, 60))


def test_yesterday_is_requested_only_just_after_midnight():
    assert partition_days(datetime(2026, 11, 5, 0, 16, tzinfo=timezone.utc)) == [
        "2026-11-04", "2026-11-05",
    ]
    assert partition_days(datetime(2026, 11, 5, 12, 16, tzinfo=timezone.utc)) == ["2026-11-05"]


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def slack_schedule():
    from sync_pipelines.definitions import defs

    return defs.get_schedule_def("slack_schedule")


def tick(schedule, instance, registry, when):
    from sync_pipelines.definitions import defs

    # Entered and exited: a context left open is finalized later by the garbage collector,
    # which resets Dagster's current-instance state under whatever test runs then.
    with build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=when,
        resources={"connections": ConnectionRegistry(path=str(registry))},
    ) as context:
        result = schedule.evaluate_tick(context)
    return result.run_requests, result.skip_message


def test_schedule_requests_each_active_connection_once(tmp_path, slack_schedule, instance):
    registry = tmp_path / "connections.yaml"
    registry.write_text(
        "connections:\n  - {id: acme, source: slack}\n  - {id: globex, source: slack}\n"
        "  - {id: paused, source: slack, active: false}\n"
    )
    instance.add_dynamic_partitions("slack_connections", ["acme", "globex", "paused"])
    when = datetime(2026, 11, 5, 12, 16, tzinfo=timezone.utc)
    requests, _ = tick(slack_schedule, instance, registry, when)
    assert sorted(r.partition_key for r in requests) == ["acme|2026-11-05", "globex|2026-11-05"]
    assert all(r.tags["sync/source"] == "slack" for r in requests)
    again, _ = tick(slack_schedule, instance, registry, when)
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # Dagster dedupes these
    assert len({r.run_key for r in requests}) == 2

    midnight, _ = tick(slack_schedule, instance, registry, when.replace(hour=0))
    assert len(midnight) == 4


def test_schedule_waits_for_missing_partitions(tmp_path, slack_schedule, instance):
    registry = tmp_path / "connections.yaml"
    registry.write_text("connections:\n  - {id: acme, source: slack}\n")
    requests, skip = tick(slack_schedule, instance, registry, clock.now())
    assert not requests and "do not exist yet" in skip


def test_disabled_or_unconfigured_source_requests_nothing_and_says_why(
    tmp_path, slack_schedule, monkeypatch, instance
):
    registry = tmp_path / "connections.yaml"
    registry.write_text("connections:\n  - {id: acme, source: slack}\n")
    instance.add_dynamic_partitions("slack_connections", ["acme"])
    monkeypatch.setenv("SYNC_DISABLED_SOURCES", "jira, slack")
    requests, skip = tick(slack_schedule, instance, registry, clock.now())
    assert not requests and "disabled by SYNC_DISABLED_SOURCES" in skip

    monkeypatch.delenv("SYNC_DISABLED_SOURCES")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    registry.write_text("connections:\n  - {id: acme, source: slack, active: false}\n")
    requests, skip = tick(slack_schedule, instance, registry, clock.now())
    assert not requests and "no active connection" in skip


def test_schedules_launch_the_named_sync_jobs(harness):
    """Scheduled runs show `<source>_sync` as their target, not an anonymous asset job."""
    from sync_pipelines.definitions import SOURCE_NAMES, defs

    for name in SOURCE_NAMES:
        assert defs.get_schedule_def(f"{name}_schedule").job_name == f"{name}_sync"
    schedule = defs.get_schedule_def("slack_schedule")
    requests, _ = tick(schedule, harness.instance, harness.registry, clock.now())
    request = next(r for r in requests if r.partition_key == f"acme|{day(0)}")
    job = Definitions(
        assets=[defs.get_assets_def("slack")], jobs=[schedule.job], resources=harness.resources()
    ).resolve_job_def(schedule.job_name)
    result = job.execute_in_process(
        instance=harness.instance, partition_key=request.partition_key, tags=request.tags
    )
    run = harness.instance.get_run_by_id(result.run_id)
    assert run.job_name == "slack_sync" and run.tags["sync/connection"] == "acme"
    (materialization,) = result.asset_materializations_for_node("slack")
    assert materialization.partition == f"acme|{day(0)}"


def test_freshness_policies_carry_the_declared_limits():
    from sync_pipelines.definitions import defs

    for row in declarations():
        policy = defs.get_assets_def(row.name).get_asset_spec().freshness_policy
        assert policy.fail_window.to_timedelta() == timedelta(minutes=row.freshness_minutes)
    assert defs.get_assets_def("vector_index").get_asset_spec().freshness_policy is None


def test_real_freshness_evaluation_applies_each_source_limit(instance):
    """Dagster's freshness daemon over the real definitions, each source last materialized
    just past or well within its limit (30 / 60 / 120 min); never materialized is UNKNOWN."""
    minutes_ago = {"slack": 31, "jira": 61, "notion": 61, "fireflies": 121}
    for name, minutes in minutes_ago.items():
        at = clock.now_epoch() - minutes * 60
        store_materialization(instance, name, f"acme|{day(0)}", at)
    with freshness_daemon(instance) as evaluate:
        evaluate()
    expected = {
        "slack": "FAIL", "jira": "FAIL", "notion": "PASS", "fireflies": "FAIL", "tempo": "UNKNOWN",
    }
    assert {name: freshness_state(instance, name) for name in expected} == expected
    assert freshness_state(instance, "vector_index") == "NOT_APPLICABLE"


def test_metrics_table_reads_figures_back_from_run_storage(harness):
    harness.sync_slack([day(-1)])
    harness.sync_slack([day(-3), day(-2)])
    harness.index()
    frame = metrics_table(harness.instance, ["slack", "vector_index"], last=10)
    slack = frame[frame.asset == "slack"]
    assert len(slack) == 2  # one row per run, even for the two-day range run
    assert (slack.api_calls > 0).all() and (slack.documents_written > 0).all()
    index = frame[frame.asset == "vector_index"]
    assert len(index) == 1 and index.chunks_embedded.iloc[0] > 0
    assert metrics_table(harness.instance, ["slack"], last=1).shape[0] == 1
