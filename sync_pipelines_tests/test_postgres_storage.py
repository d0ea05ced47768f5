"""The top-level dagster.yaml against the machine's real PostgreSQL: a run of the Slack source
and vector_index is stored there and read back."""

import shutil
import uuid
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from sync_pipelines_tests.conftest import day

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


@pytest.fixture
def pg_database():
    name = f"sync_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_runs_and_metadata_stored_in_postgres(harness, pg_database, tmp_path, monkeypatch):
    home = tmp_path / "pg_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_database)
    instance = DagsterInstance.from_config(str(home))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    # The operating limits the daemon enforces come from this file.
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config.tag_concurrency_limits == [
        {"key": "sync/group", "value": "crm", "limit": 2}
    ]
    assert concurrency.pool_config.default_pool_limit == 1
    assert instance.run_monitoring_enabled and instance.run_retries_enabled
    assert not instance.run_retries_retry_on_asset_or_op_failure
    harness.instance = instance
    instance.add_dynamic_partitions("slack_connections", ["acme"])

    sync = harness.sync_slack([day(-1)])
    index = harness.index()

    # Read back through a fresh instance: nothing is held in memory.
    reread = DagsterInstance.from_config(str(home))
    for result in (sync, index):
        run = reread.get_run_by_id(result.run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
    records = reread.fetch_materializations(AssetKey("slack"), limit=10).records
    assert len(records) == 1 and records[0].partition_key == f"acme|{day(-1)}"
    stored = records[0].asset_materialization.metadata
    assert stored["documents_written"].value == harness.metadata(sync, "slack")["documents_written"] > 0
    index_record = reread.fetch_materializations(AssetKey("vector_index"), limit=1).records[0]
    assert index_record.asset_materialization.metadata["chunks_embedded"].value > 0
    conn = psycopg2.connect(pg_database.replace("postgresql+psycopg2", "postgresql"))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 2
    conn.close()
