"""`dead_run_reaper`: fails runs whose processes died, so their pool slots and automation free up.

Why: the DefaultRunLauncher starts each run as a child process of the code server and has no
run-worker health check, so run monitoring cannot see a dead run worker. While the code server
that launched it lives, that server notices its child died and fails the run (its pool slots
then wait for `free_slots_after_run_end_seconds`); when the server died too (the service or
container killed, OOM, a reboot), nothing does: the run stays STARTED until
`max_runtime_seconds`, holding its pool slot ("Step blocked by limit for pool slack_api") and
keeping `~in_progress()` automation (vector_index) from requesting anything.

A run is dead when every process Dagster recorded for it is gone from this host and it has
logged nothing for `GRACE_S`. The recorded processes are the `pid` metadata of its engine events
(the run worker: "Started process for run (pid: N)", the executor's events) and of its
STEP_WORKER_STARTED events (multiprocess step workers), and the pid of the process that logged
RUN_START (every DagsterEvent records its process's pid: for a run executed in-process by a CLI,
`dagster asset materialize` or `sync-pipelines sync`, that is the CLI process itself). Gone
means: no such pid, a zombie, or the pid now belongs to a process started after Dagster
recorded it (pid reuse). A step worker that
outlived its run worker keeps the run alive: its work goes on, and failing the run now would
let the run retry call the API beside it; if it hangs, `max_runtime_seconds` still ends the run.

Failing the run (reason UNEXPECTED_TERMINATION) lets `run_retries` relaunch it; the reaper then
frees the run's pool slots at once, since no process of the run is left to free them. A CLI run
is failed without a retry: a person or script started it and sees it fail, and it has no code
location origin, so the daemon could not relaunch it anyway (it would only log "unable to retry"
and leave the run marked as waiting for a retry forever).

Single host: a pid means something only on the host that ran the process, and Dagster records
no hostname. The reaper acts only when the instance launches runs with DefaultRunLauncher (other
launchers check worker health themselves), and only on two kinds of run: runs of its own code
location launched through a code server on a local address (tag `.dagster/grpc_info`: localhost
or a unix socket), and runs executed in-process by a CLI (no code location origin, so no
launcher of any kind started them). It assumes the webserver, the daemon, the code servers and
the CLIs run against $DAGSTER_HOME share one host and process table, as the shipped dagster.yaml
deployment does; a CLI run against the same storage from another machine would be failed once
its pid is gone from this one, so run such CLIs on the deployment's host.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import psutil
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultRunLauncher,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.tags import GRPC_INFO_TAG, MAX_RETRIES_TAG

from sync_pipelines import clock

GRACE_S = 15  # a dead run must also have been silent this long before it is failed
INTERVAL_S = 30
# psutil derives a process's start time from the boot time, which /proc gives in whole seconds:
# only a process started this much later than Dagster recorded the pid counts as a reused pid.
PID_REUSE_MARGIN_S = 5.0
MAX_RUNS_PER_TICK = 200
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_PROCESS_EVENTS = {
    DagsterEventType.ENGINE_EVENT,
    DagsterEventType.STEP_WORKER_STARTED,
    DagsterEventType.RUN_START,
}


@dataclass(frozen=True)
class RunProcess:
    """One process Dagster recorded for a run, with when it first said so."""

    pid: int
    recorded_at: float  # epoch seconds of the first event naming this pid
    role: str  # "run worker" or "step worker"


@dataclass(frozen=True)
class DeadRun:
    run: DagsterRun
    why: str  # how its processes are known to be gone, for the failure message


def run_processes(instance: DagsterInstance, run_id: str) -> list[RunProcess]:
    """The run worker and step worker processes the run's events name, oldest first."""
    first_seen: dict[int, RunProcess] = {}
    records = instance.get_records_for_run(run_id, of_type=_PROCESS_EVENTS).records
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.RUN_START:
            pid = event.pid  # the run worker, or the CLI process executing the run in-process
        else:
            pid_value = getattr(event.event_specific_data, "metadata", {}).get("pid")
            pid = int(pid_value.value) if pid_value is not None else None
        if pid is None:
            continue
        if pid not in first_seen:
            step = event.event_type == DagsterEventType.STEP_WORKER_STARTED
            role = "step worker" if step else "run worker"
            first_seen[pid] = RunProcess(pid, entry.timestamp, role)
    return sorted(first_seen.values(), key=lambda p: p.recorded_at)


def gone_because(process: RunProcess) -> str | None:
    """Why the recorded process no longer runs on this host, or None if it may still run."""
    try:
        current = psutil.Process(process.pid)
        if current.status() == psutil.STATUS_ZOMBIE:
            return f"{process.role} pid {process.pid} has exited (zombie)"
        if current.create_time() > process.recorded_at + PID_REUSE_MARGIN_S:
            return f"{process.role} pid {process.pid} now belongs to a newer process"
    except psutil.NoSuchProcess:
        return f"{process.role} pid {process.pid} no longer exists"
    except psutil.AccessDenied:
        return None  # cannot prove anything about a process we may not inspect
    return None


def executed_by_a_cli(run: DagsterRun) -> bool:
    """True for a run executed in-process (`materialize`, `dagster asset materialize`): no run
    launcher started it, so it has neither a code location origin nor a code server tag."""
    return run.remote_job_origin is None and GRPC_INFO_TAG not in run.tags


def launched_on_this_host(run: DagsterRun) -> bool:
    """True when DefaultRunLauncher launched the run through a code server on a local address."""
    raw = run.tags.get(GRPC_INFO_TAG)
    if not raw:
        return False
    try:
        info = json.loads(raw)
    except ValueError:
        return False
    if info.get("socket"):
        return True
    host = info.get("host")
    return host in LOCAL_HOSTS or host in {socket.gethostname(), socket.getfqdn()}


def judged_here(run: DagsterRun, location_name: str | None) -> bool:
    """Whether the reaper may judge the run by this host's pids: a CLI run (it has no location
    to compare), or a run of `location_name` (when given) launched through a local code server."""
    if executed_by_a_cli(run):
        return True
    if not launched_on_this_host(run):
        return False
    origin = run.remote_job_origin
    return not location_name or (origin is not None and origin.location_name == location_name)


def _last_event_at(instance: DagsterInstance, run_id: str) -> float | None:
    records = instance.get_records_for_run(run_id, limit=1, ascending=False).records
    return records[0].event_log_entry.timestamp if records else None


def find_dead_runs(
    instance: DagsterInstance, now: float, location_name: str | None = None
) -> list[DeadRun]:
    """STARTED runs (of `location_name`, when given) whose processes are all provably gone
    from this host and that have logged nothing for GRACE_S before `now` (epoch seconds)."""
    records = instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.STARTED]), limit=MAX_RUNS_PER_TICK
    )
    dead = []
    for record in records:
        run = record.dagster_run
        if not judged_here(run, location_name):
            continue
        processes = run_processes(instance, run.run_id)
        if not any(p.role == "run worker" for p in processes):
            continue
        reasons = [gone_because(p) for p in processes]
        if not all(reasons):
            continue
        last = _last_event_at(instance, run.run_id)
        if last is None or now - last < GRACE_S:
            continue
        dead.append(DeadRun(run, "; ".join(reasons)))
    return dead


def steps_left(instance: DagsterInstance, run: DagsterRun) -> set[str] | None:
    """Planned steps of the run that neither succeeded nor were skipped (what a retry from
    failure would run), or None when the run has no stored plan."""
    if not run.execution_plan_snapshot_id:
        return None
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    done = instance.get_records_for_run(
        run.run_id, of_type={DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_SKIPPED}
    ).records
    return set(plan.step_keys_to_execute) - {r.event_log_entry.step_key for r in done}


def fail_dead_run(instance: DagsterInstance, dead: DeadRun) -> bool:
    """Mark the run failed and free its pool slots; False if it finished meanwhile.

    A run whose orphaned step workers finished every step is failed without a retry: a retry
    from failure would have nothing to run (Dagster refuses it and the run would wait forever
    for a retry that never comes). So is a CLI run: the daemon cannot relaunch a run without a
    code location origin, and the person who started it reruns it."""
    current = instance.get_run_by_id(dead.run.run_id)
    if current is None or current.status != DagsterRunStatus.STARTED:
        return False
    message = f"The run's processes are gone ({dead.why}); marked failed by dead_run_reaper"
    if executed_by_a_cli(current):
        instance.add_run_tags(current.run_id, {MAX_RETRIES_TAG: "0"})
        message += "; it ran in a CLI process, so it is not retried: run the command again."
    elif steps_left(instance, current) == set():
        instance.add_run_tags(current.run_id, {MAX_RETRIES_TAG: "0"})
        message += " after its steps had finished, so it is not retried."
    else:
        message += " so its pool slots free up and run retries can relaunch it."
    instance.report_run_failed(
        current,
        message,
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(current.run_id)
    return True


def reap(context: SensorEvaluationContext) -> Sequence[str]:
    """Fail this tick's dead runs; their ids."""
    origin = context.code_location_origin
    dead = find_dead_runs(
        context.instance, clock.now_epoch(), origin.location_name if origin else None
    )
    failed = []
    for run in dead:
        if fail_dead_run(context.instance, run):
            context.log.warning(f"failed dead run {run.run.run_id}: {run.why}")
            failed.append(run.run.run_id)
    return failed


@sensor(
    name="dead_run_reaper",
    minimum_interval_seconds=INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Fails runs whose processes died on this host (SIGKILL, OOM, reboot), launched by a "
        "code server or executed by a CLI, and frees their pool slots, which "
        "DefaultRunLauncher's run monitoring cannot detect."
    ),
)
def dead_run_reaper(context: SensorEvaluationContext):
    if not isinstance(context.instance.run_launcher, DefaultRunLauncher):
        return SkipReason(
            f"run launcher is {type(context.instance.run_launcher).__name__}, which checks run "
            "worker health itself; nothing to do"
        )
    failed = reap(context)
    if failed:
        return SkipReason(f"failed {len(failed)} dead run(s): {', '.join(failed)}")
    return SkipReason("no dead run")
