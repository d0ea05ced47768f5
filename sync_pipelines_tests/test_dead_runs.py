"""The dead-run reaper's decisions, on real run and event storage and real processes.

Each test records a run the way Dagster does (STARTED, launched through a local code server,
engine events naming its worker pids) and points those pids at processes the test starts,
kills or leaves as zombies; one test SIGKILLs a real `sync-pipelines sync` process mid-run.
Times are derived from those processes' own start times or events, or from `clock`, never read
from the wall clock.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import time_machine
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    EventLogEntry,
    MetadataValue,
    RunsFilter,
    build_sensor_context,
    evaluate_automation_conditions,
    instance_for_test,
    job,
    op,
)
from dagster._core.events import (
    AssetMaterializationPlannedData,
    EngineEventData,
    StepSuccessData,
)
from dagster._core.execution.api import create_execution_plan
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.snap import create_execution_plan_snapshot_id, snapshot_from_execution_plan
from dagster._core.storage.tags import (
    GRPC_INFO_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
)
from dagster._daemon.monitoring import execute_concurrency_slots_iteration

from sync_pipelines import clock
from sync_pipelines.dead_runs import GRACE_S, dead_run_reaper, fail_dead_run, find_dead_runs
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_cli_sync import registry_text
from sync_pipelines_tests.test_postgres_storage import pg_database  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[1]
LOCAL = {GRPC_INFO_TAG: json.dumps({"host": "localhost", "port": 4266})}


@op
def sync_step():
    """The one step of the run a test pretends is in flight."""


@job
def one_step_job():
    sync_step()


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def processes():
    """Starts sleeping processes; kills and reaps whatever is left at the end."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def created_at(proc: subprocess.Popen) -> float:
    return psutil.Process(proc.pid).create_time()


def gone_pid(processes) -> tuple[int, float]:
    """A pid whose process has exited and been reaped, and when it had started."""
    proc = processes()
    at = created_at(proc)
    proc.kill()
    proc.wait()
    return proc.pid, at


def zombie(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
        pass


def started_run(instance, tags=LOCAL, location: str | None = None, **kwargs) -> DagsterRun:
    origin = None
    if location:
        repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(location), "repo")
        origin = RemoteJobOrigin(repository, "slack_sync")
    run = DagsterRun(
        job_name=kwargs.pop("job_name", "slack_sync"),
        run_id=uuid.uuid4().hex,
        status=DagsterRunStatus.STARTED,
        tags=tags,
        remote_job_origin=origin,
        **kwargs,
    )
    return instance.add_run(run)


def record_process(instance, run: DagsterRun, pid: int, at: float, step: bool = False) -> None:
    """Store the event Dagster writes when a run worker (or step worker) process starts."""
    if step:
        event = DagsterEvent(
            DagsterEventType.STEP_WORKER_STARTED.value,
            job_name=run.job_name,
            message='Executing step "sync_step" in subprocess.',
            event_specific_data=EngineEventData(metadata={"pid": MetadataValue.text(str(pid))}),
            step_key="sync_step",
        )
    else:
        event = DagsterEvent(
            DagsterEventType.ENGINE_EVENT.value,
            job_name=run.job_name,
            message=f"Started process for run (pid: {pid}).",
            event_specific_data=EngineEventData.in_process(pid),
        )
    instance.store_event(
        EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message="",
            run_id=run.run_id,
            timestamp=at,
            step_key=event.step_key,
            job_name=run.job_name,
            dagster_event=event,
        )
    )


def dead_ids(instance, now: float, location: str | None = None) -> set[str]:
    return {d.run.run_id for d in find_dead_runs(instance, now, location)}


def test_a_run_whose_worker_is_gone_is_dead_once_silent_for_the_grace(instance, processes):
    pid, at = gone_pid(processes)
    run = started_run(instance)
    record_process(instance, run, pid, at + 1)

    assert dead_ids(instance, now=at + 1 + GRACE_S - 1) == set()
    (dead,) = find_dead_runs(instance, now=at + 1 + GRACE_S)
    assert dead.run.run_id == run.run_id
    assert f"run worker pid {pid} no longer exists" in dead.why


def test_a_live_worker_keeps_its_run(instance, processes):
    proc = processes()
    run = started_run(instance)
    record_process(instance, run, proc.pid, created_at(proc) + 1)

    assert dead_ids(instance, now=created_at(proc) + 3600) == set()


def test_a_zombie_or_a_reused_pid_counts_as_gone(instance, processes):
    exited = processes()
    exited_run = started_run(instance)
    record_process(instance, exited_run, exited.pid, created_at(exited) + 1)
    zombie(exited)
    # A process started a minute after Dagster recorded the pid is someone else's.
    reused = processes()
    reused_run = started_run(instance)
    record_process(instance, reused_run, reused.pid, created_at(reused) - 60)

    dead = {d.run.run_id: d.why for d in find_dead_runs(instance, now=created_at(reused) + 3600)}
    assert dead.keys() == {exited_run.run_id, reused_run.run_id}
    assert "(zombie)" in dead[exited_run.run_id]
    assert "now belongs to a newer process" in dead[reused_run.run_id]


def test_a_step_worker_that_outlived_its_run_worker_keeps_the_run(instance, processes):
    pid, at = gone_pid(processes)
    step = processes()
    run = started_run(instance)
    record_process(instance, run, pid, at + 1)
    record_process(instance, run, step.pid, created_at(step) + 1, step=True)
    later = created_at(step) + 1 + GRACE_S

    assert dead_ids(instance, now=later) == set()
    step.kill()
    step.wait()
    assert dead_ids(instance, now=later) == {run.run_id}


def test_runs_of_other_hosts_locations_or_launchers_are_left_alone(instance, processes):
    pid, at = gone_pid(processes)
    elsewhere = json.dumps({"host": "10.1.2.3", "port": 4266})
    remote = started_run(instance, tags={GRPC_INFO_TAG: elsewhere})
    # Launched (it has an origin), but not through a code server: another launcher's run.
    other_launcher = started_run(instance, tags={}, location="sync_pipelines")
    ours = started_run(instance, location="sync_pipelines")
    theirs = started_run(instance, location="another_location")
    for run in (remote, other_launcher, ours, theirs):
        record_process(instance, run, pid, at + 1)
    no_pid_recorded = started_run(instance)
    later = at + 1 + GRACE_S

    assert dead_ids(instance, now=later, location="sync_pipelines") == {ours.run_id}
    assert no_pid_recorded.run_id not in dead_ids(instance, now=later)


@pytest.fixture
def pg_instance(pg_database, tmp_path, monkeypatch):  # noqa: F811
    """The deployment's instance: the shipped dagster.yaml (run retries, pools) on PostgreSQL."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_database)
    inst = DagsterInstance.from_config(str(home))
    yield inst
    inst.dispose()


def dead_run_holding_a_slot(instance, processes, **kwargs) -> DagsterRun:
    """A STARTED run of `one_step_job` holding the slack_api slot, whose worker is gone."""
    pid, _ = gone_pid(processes)
    plan = snapshot_from_execution_plan(
        create_execution_plan(one_step_job), one_step_job.get_job_snapshot_id()
    )
    instance.add_snapshot(plan)
    run = started_run(
        instance,
        job_name=one_step_job.name,
        execution_plan_snapshot_id=create_execution_plan_snapshot_id(plan),
        **kwargs,
    )
    record_process(instance, run, pid, clock.now_epoch() - GRACE_S - 1)
    instance.event_log_storage.set_concurrency_slots("slack_api", 1)
    instance.event_log_storage.claim_concurrency_slot("slack_api", run.run_id, "sync_step")
    return run


def test_the_sensor_fails_a_dead_run_frees_its_slot_and_lets_run_retries_relaunch_it(
    pg_instance, processes
):
    run = dead_run_holding_a_slot(pg_instance, processes)
    assert pg_instance.event_log_storage.get_concurrency_info("slack_api").claimed_slots

    result = dead_run_reaper(build_sensor_context(instance=pg_instance))

    assert result.skip_message == f"failed 1 dead run(s): {run.run_id}"
    failed = pg_instance.get_run_by_id(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    assert failed.tags[RUN_FAILURE_REASON_TAG] == "UNEXPECTED_TERMINATION"
    assert failed.tags[WILL_RETRY_TAG] == "true"  # run_retries in dagster.yaml relaunches it
    assert not pg_instance.event_log_storage.get_concurrency_info("slack_api").claimed_slots
    again = dead_run_reaper(build_sensor_context(instance=pg_instance))
    assert again.skip_message == "no dead run"


def test_a_dead_run_whose_steps_all_finished_is_failed_without_a_retry(pg_instance, processes):
    run = dead_run_holding_a_slot(pg_instance, processes)
    # Its orphaned step worker finished the step after the run worker died.
    pg_instance.report_dagster_event(
        DagsterEvent(
            DagsterEventType.STEP_SUCCESS.value,
            job_name=run.job_name,
            step_key="sync_step",
            event_specific_data=StepSuccessData(duration_ms=10.0),
        ),
        run_id=run.run_id,
    )
    (dead,) = find_dead_runs(pg_instance, clock.now_epoch() + GRACE_S)

    assert fail_dead_run(pg_instance, dead)
    failed = pg_instance.get_run_by_id(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    assert failed.tags[WILL_RETRY_TAG] == "false"
    assert not fail_dead_run(pg_instance, dead), "a finished run is never failed twice"


def test_the_slot_of_a_run_failed_by_its_code_server_is_freed_a_minute_after_it_ended(
    pg_instance, processes
):
    """A code server that saw its run worker die fails the run but leaves its slot claimed; the
    daemon's run monitoring frees it per dagster.yaml's free_slots_after_run_end_seconds."""
    run = dead_run_holding_a_slot(pg_instance, processes)
    pg_instance.report_run_failed(run)  # what the code server does
    monitoring = SimpleNamespace(instance=pg_instance)  # all the iteration reads of its context

    def claimed_after_a_monitoring_pass() -> list:
        list(execute_concurrency_slots_iteration(monitoring, logging.getLogger(__name__)))
        return pg_instance.event_log_storage.get_concurrency_info("slack_api").claimed_slots

    assert claimed_after_a_monitoring_pass()
    with time_machine.travel(clock.now() + timedelta(seconds=61), tick=False):
        assert not claimed_after_a_monitoring_pass()


def test_the_sensor_does_nothing_under_a_launcher_that_checks_worker_health(processes):
    overrides = {
        "run_launcher": {
            "module": "dagster._core.launcher.sync_in_memory_run_launcher",
            "class": "SyncInMemoryRunLauncher",
        }
    }
    with instance_for_test(overrides=overrides) as inst:
        pid, _ = gone_pid(processes)
        run = started_run(inst)
        record_process(inst, run, pid, clock.now_epoch() - GRACE_S - 1)

        result = dead_run_reaper(build_sensor_context(instance=inst))

        assert "SyncInMemoryRunLauncher" in result.skip_message
        assert inst.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED


def test_vector_index_automation_resumes_once_the_dead_run_is_failed(instance, processes):
    from sync_pipelines.index.asset import build_vector_index
    from sync_pipelines.sources.registry import source_asset

    slack_asset = source_asset("slack")

    vector_index = build_vector_index([slack_asset])
    # Loaded only, never run: the resources just have to exist.
    defs = Definitions(
        assets=[slack_asset, vector_index],
        resources={
            "connections": ConnectionRegistry(),
            "documents": DocumentStore(),
            "slack": SlackResource(),
            "embedder": EmbedderResource(kind="hashing"),
            "vector_store": VectorStoreResource(kind="lance"),
        },
    )
    instance.add_dynamic_partitions("slack_connections", ["acme"])
    cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
    # A vector_index run whose worker died: STARTED, with vector_index planned.
    pid, _ = gone_pid(processes)
    dead = started_run(instance, job_name="vector_index_update")
    instance.report_dagster_event(
        DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
            job_name=dead.job_name,
            event_specific_data=AssetMaterializationPlannedData(vector_index.key),
        ),
        run_id=dead.run_id,
    )
    record_process(instance, dead, pid, clock.now_epoch() - GRACE_S - 1)
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=slack_asset.key, partition=f"acme|{day(0)}")
    )

    wedged = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert wedged.get_num_requested(AssetKey("vector_index")) == 0  # ~in_progress()

    (found,) = find_dead_runs(instance, clock.now_epoch() + GRACE_S)
    assert fail_dead_run(instance, found)
    resumed = evaluate_automation_conditions(defs=defs, instance=instance, cursor=wedged.cursor)
    assert resumed.get_num_requested(AssetKey("vector_index")) == 1


def wait_for(condition, what: str, timeout_s: float = 60.0):
    """Poll `condition` until it returns something truthy (a deadline, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cli_home(tmp_path, sandbox, pg_database):  # noqa: F811
    """The deployment's DAGSTER_HOME (shipped dagster.yaml: run retries, pools of 1) and the env
    for `sync-pipelines sync` against the Slack emulator, slowed so that a run is still in
    flight when the test kills it."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    registry = tmp_path / "connections.yaml"
    registry.write_text(registry_text(sandbox.urls["slack"]))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNC_CONNECTIONS_FILE": str(registry),
        "SYNC_DATA_DIR": str(tmp_path / "data"),
        "TEST_FRESH_TOKEN": SANDBOX_SLACK_TOKEN,
        "DAGSTER_PG_URL": pg_database,
    }
    sandbox.knobs.latency_ms = 500
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_PG_URL", pg_database)
        with DagsterInstance.from_config(str(home)) as inst:
            yield SimpleNamespace(instance=inst, env=env)


def started_cli_run(instance) -> DagsterRun:
    """The CLI's run once it is STARTED and holds the slack_api slot."""
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    if runs and instance.event_log_storage.get_concurrency_info("slack_api").claimed_slots:
        return runs[0]
    return None


@pytest.mark.wall_clock  # the CLI process runs on the real clock; times come from its events
def test_a_sigkilled_cli_run_is_failed_without_retry_and_frees_its_slot(cli_home):
    instance = cli_home.instance
    command = [str(Path(sys.executable).with_name("sync-pipelines")), "sync", "slack"]
    cli = subprocess.Popen(
        [*command, "--connection", "fresh", "--day", day(-1)],
        env=cli_home.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run = wait_for(lambda: started_cli_run(instance), "the CLI run to claim its pool slot")
        assert run.remote_job_origin is None and GRPC_INFO_TAG not in run.tags
        last = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
        long_after = last[0].event_log_entry.timestamp + 3600
        assert dead_ids(instance, now=long_after) == set(), "a live CLI run is left alone"
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    assert instance.event_log_storage.get_concurrency_info("slack_api").claimed_slots

    last = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
    silent = last[0].event_log_entry.timestamp + GRACE_S
    with time_machine.travel(silent - 1, tick=False):
        early = dead_run_reaper(build_sensor_context(instance=instance))
    with time_machine.travel(silent, tick=False):
        result = dead_run_reaper(build_sensor_context(instance=instance))

    assert early.skip_message == "no dead run"
    assert result.skip_message == f"failed 1 dead run(s): {run.run_id}"
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    assert failed.tags[RUN_FAILURE_REASON_TAG] == "UNEXPECTED_TERMINATION"
    assert failed.tags[WILL_RETRY_TAG] == "false"  # no origin to relaunch: the person reruns it
    assert f"run worker pid {cli.pid} no longer exists" in failed_message(instance, run)
    assert not instance.event_log_storage.get_concurrency_info("slack_api").claimed_slots


def failed_message(instance, run: DagsterRun) -> str:
    (record,) = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.RUN_FAILURE
    ).records
    return record.event_log_entry.dagster_event.message
