"""At most 2 CRM runs at once, whatever launched them: 5 asset backfills of 5 CRM sources,
queued with no tags of their own, go through a real `dagster-daemon` (queued run coordinator,
backfill daemon) on the machine's PostgreSQL with the top-level dagster.yaml. The run
coordinator tags each run `sync/group=crm` when it is submitted; polling run storage never
shows more than 2 of them started, and every run finishes. (Other processes: the test runs on
the real clock and reads what happened from run storage, never from timing.)"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from sync_pipelines import clock
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_daemon_postgres import wait_for
from sync_pipelines_tests.test_postgres_storage import pg_database  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[1]
SOURCES = [f"crmq{i}" for i in range(1, 6)]
ACTIVE = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)

SOURCE_TEXT = '''
"""A throw-away CRM source for the concurrency test: one table, a slow API."""

import time

from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.resource import SourceResourceBase
from sync_pipelines.warehouse.crm import CrmOptions, crm_sync
from sync_pipelines.warehouse.tables import Table


class Resource(SourceResourceBase):
    ENV_PREFIX = "{upper}"
    DEFAULT_BASE_URL = "https://api.{name}.test"

    def client_for(self, connection):
        return self.http_client(connection)


def pages(run):
    time.sleep(4)  # a slow API: runs of different sources overlap if the queue lets them
    yield [{{"id": i, "updated": run.lower}} for i in range(3)]


SOURCE = SourceDeclaration(
    name="{name}",
    resource=Resource,
    sync=crm_sync([Table("things", ("id",), pages)]),
    options=CrmOptions,
    group="crm",
    description="A throw-away CRM.",
    schedule=Cadence(every_minutes=60, at_minute=13, stale_after_minutes=120),
    credentials_env={{"token": "{upper}_TOKEN"}},
    docs_url="https://docs.{name}.test/",
)
'''


def crm_active(instance) -> list:
    return [
        r
        for r in instance.get_runs(filters=RunsFilter(statuses=list(ACTIVE)))
        if r.tags.get("sync/group") == "crm"
    ]

def forget_sources(folder: str) -> None:
    """Undo what importing the daemon's definitions did in this process: the throw-away
    sources leave the search path and the registry, so later tests see only the real ones."""
    import sync_pipelines.sources as sources_package
    from sync_pipelines.sources import registry as source_registry

    while folder in sources_package.__path__:
        sources_package.__path__.remove(folder)
    for name in SOURCES:
        sys.modules.pop(f"sync_pipelines.sources.{name}", None)
    source_registry.refresh()


@pytest.mark.wall_clock
def test_five_crm_backfills_never_run_more_than_two_at_once(pg_database, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    folder = tmp_path / "sources"
    for name in SOURCES:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            textwrap.dedent(SOURCE_TEXT.format(name=name, upper=name.upper()))
        )
    registry = tmp_path / "connections.yaml"
    registry.write_text(
        "connections:\n"
        + "".join(
            f"  - {{id: acme, source: {n}, credentials: {{token: {n.upper()}_TOKEN}}}}\n"
            for n in SOURCES
        )
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: sync_pipelines_tests.crm_daemon_defs\n"
        f"      working_directory: {ROOT}\n"
        "      location_name: crm_daemon_test\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": pg_database,
        "SYNC_CONNECTIONS_FILE": str(registry),
        "SYNC_DATA_DIR": str(tmp_path / "data"),
        "CRM_DAEMON_SOURCES": str(folder),
        **{f"{n.upper()}_TOKEN": "secret" for n in SOURCES},
    }
    env.pop("SYNC_WAREHOUSE_URL", None)
    os.environ["DAGSTER_PG_URL"] = pg_database
    instance = DagsterInstance.from_config(str(home))

    os.environ["CRM_DAEMON_SOURCES"] = str(folder)
    try:
        import importlib

        import sync_pipelines_tests.crm_daemon_defs as module

        module = importlib.reload(module)
        graph = module.defs.resolve_asset_graph()
        assert sorted(d.name for d in module.CRM) == SOURCES
    finally:
        os.environ.pop("CRM_DAEMON_SOURCES", None)
        forget_sources(str(folder))

    backfills = []
    for name in SOURCES:
        instance.add_dynamic_partitions(f"{name}_connections", ["acme"])
        backfill_id = uuid.uuid4().hex[:8]
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=graph,
                partition_names=[f"acme|{day(-d)}" for d in (2, 1)],
                asset_selection=[AssetKey(name)],
                backfill_timestamp=clock.now_epoch(),
                tags={},  # no group tag: only the run coordinator can add it
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=None,
            )
        )
        backfills.append(backfill_id)

    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    max_seen = 0

    def all_done() -> bool:
        nonlocal max_seen
        max_seen = max(max_seen, len(crm_active(instance)))
        runs = [
            r
            for b in backfills
            for r in instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": b}))
        ]
        return len(runs) == len(SOURCES) and all(r.is_finished for r in runs)

    try:
        wait_for(all_done, "the 5 backfills' runs to finish", daemon, timeout=400, every=0.2)
        wait_for(
            lambda: all(
                instance.get_backfill(b).status
                in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED)
                for b in backfills
            ),
            "the backfills to complete",
            daemon,
        )
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
        log.close()

    runs = [
        r
        for b in backfills
        for r in instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": b}))
    ]
    assert len(runs) == 5 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert {r.tags["sync/group"] for r in runs} == {"crm"}
    assert sorted(r.tags["sync/source"] for r in runs) == SOURCES
    # The same from the runs' own start and end times: never more than 2 overlapping.
    records = instance.get_run_records(filters=RunsFilter(run_ids=[r.run_id for r in runs]))
    spans = [(rec.start_time, rec.end_time) for rec in records]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    print(f"CRM concurrency: max started at once (polled) {max_seen}, by run times {overlap}")
    assert 1 <= max_seen <= 2 and overlap <= 2
