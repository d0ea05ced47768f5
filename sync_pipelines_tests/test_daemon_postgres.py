"""Production path end to end: the top-level dagster.yaml on the machine's PostgreSQL, a real
`dagster-daemon` running the schedule, the queued run coordinator, pools, the backfill daemon
and the dead-run reaper. Checks the schedule ticks' runs, a run whose step failed and was
retried, a 30-day backfill in at most 3 runs, and a run whose worker was SIGKILLed while it
held its pool slot being failed so that the next run of the pool starts, all read back from
PostgreSQL storage.

The daemon and its runs live in other processes, which the suite's pinned clock cannot reach:
the test runs on the real clock (`wall_clock`) and takes what it expects from the daemon's own
records (a schedule tick's timestamp, event storage ids), never from reading the clock."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from sync_pipelines import clock
from sync_pipelines.dead_runs import run_processes
from sync_pipelines.metrics import metrics_table
from sync_pipelines.schedules import partition_days
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_postgres_storage import pg_database  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
# Upper bound for a dead run to be failed and the next run of its pool to start: the daemon's
# new code server (it replaces its code servers every 60 s), the reaper's interval (30 s) and
# grace (15 s), a dequeue and a run worker start, with room for a busy host.
NEXT_RUN_OF_POOL_S = 240


def wait_for(condition, what: str, daemon, timeout: float = TIMEOUT_S, every: float = 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "dagster-daemon exited; see daemon.log"
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def events(instance, run_id: str, *types: DagsterEventType):
    return instance.get_records_for_run(run_id, of_type=set(types)).records


def backfill_runs_finished(instance, backfill_id: str) -> bool:
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    return bool(runs) and all(run.is_finished for run in runs)


def slack_run_in_its_step(instance):
    """A slack run whose step holds the pool slot right now (started, not ended), or None."""
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        if events(instance, run.run_id, DagsterEventType.STEP_START) and not events(
            instance, run.run_id, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE
        ):
            return run
    return None


def slot_holders(instance, pool: str) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(pool)
    return {slot.run_id for slot in info.claimed_slots}


def step_started_after(instance, storage_id: int, other_than: str):
    """A run (not `other_than`) whose step started after event `storage_id`, or None."""
    for run in instance.get_runs():
        starts = events(instance, run.run_id, DagsterEventType.STEP_START)
        if run.run_id != other_than and any(r.storage_id > storage_id for r in starts):
            return run
    return None


def schedule_ticks(instance, name: str):
    (state,) = [
        s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        if s.instigator_name == name
    ]
    return instance.get_ticks(
        state.instigator_origin_id, state.selector_id, statuses=[TickStatus.SUCCESS]
    )


@pytest.mark.wall_clock
def test_schedule_retry_and_backfill_through_the_daemon(sandbox, pg_database, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    registry = tmp_path / "connections.yaml"
    registry.write_text(
        "connections:\n  - id: acme\n    source: slack\n"
        f"    base_url: {sandbox.urls['slack']}\n"
        "    credentials: {token: DAEMON_TEST_SLACK_TOKEN}\n"
        "    options: {tier_limits_per_minute: {tier2: 0, tier3: 0, tier4: 0}}\n"
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: sync_pipelines_tests.daemon_defs\n"
        f"      working_directory: {ROOT}\n"
        "      location_name: daemon_test\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": pg_database,
        "SYNC_CONNECTIONS_FILE": str(registry),
        "SYNC_DATA_DIR": str(tmp_path / "data"),
        "DAEMON_TEST_SLACK_TOKEN": SANDBOX_SLACK_TOKEN,
    }
    os.environ["DAGSTER_PG_URL"] = pg_database
    instance = DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("slack_connections", ["acme"])
    # The first run to list channels fails every client attempt (5xx): its step fails and the
    # asset's RetryPolicy retries it.
    sandbox.knobs.inject("conversations.list", "503", count=6)

    from sync_pipelines_tests.daemon_defs import defs

    backfill_id = uuid.uuid4().hex[:8]
    partitions = [f"acme|{day(-d)}" for d in range(29, -1, -1)]
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=defs.resolve_asset_graph(),
            partition_names=partitions,
            asset_selection=[AssetKey("slack")],
            backfill_timestamp=clock.now_epoch(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
    )
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=tmp_path,
        env=env,
        stdout=open(tmp_path / "daemon.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # The schedule must be on in this instance: its default status is RUNNING.
        wait_for(
            lambda: backfill_runs_finished(instance, backfill_id), "the backfill's runs", daemon
        )
        # A slow API keeps the next run in its step, holding the slack_api slot, while the
        # processes of the run and the code server that launched it are SIGKILLed (as a host,
        # container or service restart does). With its code server alive, Dagster itself fails
        # a run whose worker died; with it gone the run stays STARTED until the reaper acts.
        sandbox.knobs.latency_ms = 1500
        try:
            victim = wait_for(
                lambda: slack_run_in_its_step(instance), "a run in its step", daemon, every=0.2
            )
            workers = run_processes(instance, victim.run_id)
            run_worker = next(p for p in workers if p.role == "run worker")
            code_server = psutil.Process(run_worker.pid).parent()
            for pid in [code_server.pid, *(p.pid for p in workers)]:
                os.kill(pid, signal.SIGKILL)
        finally:
            sandbox.knobs.latency_ms = 0
        assert slot_holders(instance, "slack_api") == {victim.run_id}
        failure = wait_for(
            lambda: events(instance, victim.run_id, DagsterEventType.RUN_FAILURE),
            "the dead run to be failed",
            daemon,
            timeout=NEXT_RUN_OF_POOL_S,
        )[0]
        next_run = wait_for(
            lambda: step_started_after(instance, failure.storage_id, other_than=victim.run_id),
            "the next run of the slack_api pool to start",
            daemon,
            timeout=NEXT_RUN_OF_POOL_S,
        )
        wait_for(
            lambda: instance.get_run_by_id(next_run.run_id).is_finished,
            "the next run of the pool to finish",
            daemon,
        )
        wait_for(
            lambda: instance.get_backfill(backfill_id).status
            in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED),
            "the backfill to complete",
            daemon,
        )
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()

    reread = DagsterInstance.from_config(str(home))
    assert type(reread.run_storage).__name__ == "PostgresRunStorage"
    assert reread.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
    backfill_runs = reread.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert 1 <= len(backfill_runs) <= 3, "30 days of one connection in at most 3 runs"
    assert all(r.status == DagsterRunStatus.SUCCESS for r in backfill_runs)
    slack_partitions = {
        r.partition_key
        for r in reread.fetch_materializations(AssetKey("slack"), limit=100).records
    }
    assert set(partitions) <= slack_partitions

    # Each tick requested the days its own scheduled time calls for (yesterday too just after
    # midnight), for the one connection.
    ticks = [t for t in schedule_ticks(reread, "slack_schedule") if t.run_ids]
    assert ticks, "the schedule ticked and launched runs"
    for tick in ticks:
        scheduled_at = datetime.fromtimestamp(tick.timestamp, tz=UTC)
        runs = [reread.get_run_by_id(run_id) for run_id in tick.run_ids]
        assert {r.tags["sync/connection"] for r in runs} == {"acme"}
        assert sorted(r.tags["dagster/partition"] for r in runs) == [
            f"acme|{d}" for d in partition_days(scheduled_at)
        ]

    # The killed run was failed by the reaper (not by the runtime limit), its slot freed, and
    # the pool's next run got the slot and finished.
    dead = reread.get_run_by_id(victim.run_id)
    assert dead.status == DagsterRunStatus.FAILURE
    assert "dead_run_reaper" in failure.event_log_entry.dagster_event.message
    assert dead.tags["dagster/will_retry"] == "true"
    assert dead.tags["dagster/auto_retry_run_id"], "run_retries relaunched it"
    assert victim.run_id not in slot_holders(reread, "slack_api")
    assert reread.get_run_by_id(next_run.run_id).status == DagsterRunStatus.SUCCESS

    retried = [
        run for run in reread.get_runs()
        if reread.get_records_for_run(
            run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY
        ).records
    ]
    assert retried, "one run's step failed on 503s and was retried by its RetryPolicy"
    assert all(r.status == DagsterRunStatus.SUCCESS for r in retried)

    metrics = metrics_table(reread, ["slack"], last=10)
    assert len(metrics) >= 2 and (metrics.api_calls > 0).all()
