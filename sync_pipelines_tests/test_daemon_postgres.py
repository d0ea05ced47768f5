"""Production path end to end: the top-level dagster.yaml on the machine's PostgreSQL, a real
`dagster-daemon` running the schedule, the queued run coordinator, pools and the backfill
daemon. Checks a schedule tick's run, a run whose step failed and was retried, and a 30-day
backfill in at most 3 runs, all read back from PostgreSQL storage."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from sync_pipelines.metrics import metrics_table
from sync_pipelines.sandbox import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_postgres_storage import pg_database  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def wait_for(condition, what: str, daemon, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "dagster-daemon exited; see daemon.log"
        value = condition()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def test_schedule_retry_and_backfill_through_the_daemon(sandbox, pg_database, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    registry = tmp_path / "connections.yaml"
    registry.write_text(
        "connections:\n  - id: acme\n    source: slack\n"
        f"    base_url: {sandbox.slack_base_url}\n"
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
            backfill_timestamp=time.time(),
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
            lambda: instance.get_backfill(backfill_id).status
            in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED),
            "the backfill to complete",
            daemon,
        )
        scheduled = wait_for(
            lambda: [
                r for r in instance.get_runs(
                    filters=RunsFilter(tags={"dagster/schedule_name": "slack_schedule"})
                )
                if r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
            ],
            "a scheduled run to finish",
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

    assert scheduled[0].tags["sync/connection"] == "acme"
    assert scheduled[0].tags["dagster/partition"] == f"acme|{day(0)}"

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
