"""The outside fault-injection review's method, long form: `make reliability`.

Not collected by the default test run (the file name is not test_*.py); run it explicitly:

    .venv/bin/python -m pytest -p no:xdist -q sync_pipelines_tests/reliability/long_suite.py

- Fault seeds: the Slack, OpenAI and Pinecone emulators behind the seeded fault proxy (10 %:
  5xx, 429, malformed bodies, resets, hangs, writes landed behind a 502, requests delivered
  twice), two days synced and indexed in-process, failed runs re-run as a user would.
- Kills: real `dagster asset materialize` processes of the product's code location on
  PostgreSQL run storage, behind the proxy (5 %), each killed with SIGKILL to its process group
  at a seeded request during a Slack sync and during vector_index, then re-run.
- After every seed and every kill the Pinecone namespace must equal an undisturbed reference
  run's exactly, with no duplicate vectors and no private chunk returned to non-members; an
  unchanged re-run must embed nothing. The kill scenario runs with distinctive fake secrets
  (plus a revoked token that fails) and then scans the PostgreSQL event log, DAGSTER_HOME
  (compute logs) and the data dir for them.

The figures table (seeds, faults fired by kind, runs, missing/extra/stale, duplicates, extra
embedding inputs against the reference) is printed at the end. A scenario records its row
before asserting its checks, so a failing check still shows its figures (a run that keeps
failing stops the scenario earlier, with the runs' errors).

Pools: the kill scenario's dagster.yaml has the shipped storage and pool limits
(`default_limit: 1`). A run killed under `dagster asset materialize` keeps its pool slot until
`dead_run_reaper` fails it; the daemon is not running here, so between each kill and its re-run
the suite evaluates that sensor itself, once the killed run has been silent for its grace, as
an operator's daemon would on its next tick (see `reap_after_kill`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, RunsFilter, build_sensor_context

from sync_pipelines import clock
from sync_pipelines.dead_runs import GRACE_S, dead_run_reaper
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fault_proxy import FaultPlan, FaultProxies, FaultProxy
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.reliability import report
from sync_pipelines_tests.reliability.checks import compare, private_chunk_leaks
from sync_pipelines_tests.reliability.deployment import (
    CLI_TIMEOUT_S,
    Credentials,
    Deployment,
    Endpoints,
    kill_group,
    run_errors,
)
from sync_pipelines_tests.reliability.scenarios import (
    LONG_COMPANY,
    PROXIED,
    REFERENCE,
    build_reference,
    run_under_faults,
)
from sync_pipelines_tests.reliability.secret_scan import canaries, scan_files, scan_postgres

pytestmark = pytest.mark.integration

FAULT_SEEDS = (101, 102, 103, 104)
KILL_SEEDS = (201, 202)
FAULT_PLAN = FaultPlan(rate=0.1, hang_s=4.0)  # the in-process Slack client times out after 3 s
KILL_PLAN = FaultPlan(rate=0.05, hang_s=4.0)
SLACK_ENV = "RELIABILITY_SLACK_TOKEN"
REVOKED_ENV = "RELIABILITY_REVOKED_TOKEN"
KILL_BUDGET_S = 300  # for all `dagster` runs of one kill seed (about 90 s when healthy)
KILL_LATENCY_MS = 40  # emulator latency while a killed run is running, so the kill lands mid-run
PG_DAGSTER_YAML = """\
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
concurrency:
  pools:
    default_limit: 1  # as shipped: a killed run's slot blocks every re-run until it is freed
telemetry:
  enabled: false
"""


def two_days() -> list[str]:
    return [day(-2), day(-1)]


def failed(checks: dict[str, bool]) -> list[str]:
    """The checks that do not hold, by name."""
    return [name for name, holds in checks.items() if not holds]


def store_figures(comparison) -> str:
    c = comparison
    return f"{c.missing}/{c.extra}/{c.stale} of {c.reference}"


def runs_figures(deployment: Deployment) -> str:
    return f"{sum(deployment.runs.values())} ({sum(deployment.failed_runs.values())})"


@dataclass(frozen=True)
class FaultWorld:
    """One company, sandbox and reference run, shared by every fault seed."""

    company: Company
    sandbox: Sandbox
    root: Path
    credentials: Credentials
    reference_inputs: int


@pytest.fixture(scope="module")
def fault_world(tmp_path_factory):
    company = Company.generate(**LONG_COMPANY)
    with pytest.MonkeyPatch.context() as patch, Sandbox(company=company) as sandbox:
        patch.setenv(SLACK_ENV, SANDBOX_SLACK_TOKEN)
        credentials = Credentials(
            SLACK_ENV, SANDBOX_SLACK_TOKEN, SANDBOX_OPENAI_KEY, SANDBOX_PINECONE_KEY
        )
        root = tmp_path_factory.mktemp("faults")
        _, inputs = build_reference(sandbox, root, credentials, two_days())
        yield FaultWorld(company, sandbox, root, credentials, inputs)


@pytest.mark.parametrize("seed", FAULT_SEEDS)
def test_fault_seed_leaves_exactly_the_reference(fault_world, seed):
    world = fault_world
    deployment, outcome = run_under_faults(
        world.sandbox, world.root, world.credentials, two_days(), seed, FAULT_PLAN
    )
    acl = private_chunk_leaks(world.sandbox, deployment, world.company)
    failures = failed(
        {
            "the proxy fired faults": sum(outcome.fired.values()) > 0,
            f"the store equals the reference ({outcome.comparison})": outcome.comparison.exact,
            f"no private chunk shown to non-members ({acl})": acl.leaked == 0,
            "members find their own private chunks": acl.member_hits == acl.queries,
            f"an unchanged re-run embeds nothing ({outcome.rerun_inputs} inputs)": (
                outcome.rerun_chunks_embedded == outcome.rerun_inputs == 0
            ),
        }
    )
    report.record(
        fired=outcome.fired,
        scenario="faults",
        seed=seed,
        requests=outcome.requests,
        runs=runs_figures(deployment),
        store=store_figures(outcome.comparison),
        duplicates=outcome.comparison.duplicates,
        acl=f"{acl.leaked}/{acl.queries} ({acl.identities} ids)",
        extra_inputs=outcome.embedding_inputs - world.reference_inputs,
        rerun=outcome.rerun_inputs,
        verdict="ok" if not failures else "FAIL",
    )
    assert outcome.comparison.reference > 0
    assert not failures, (failures, outcome.errors)


@dataclass(frozen=True)
class Kill:
    asset: str
    at_request: int
    mid_run: bool  # the process was still running when SIGKILL landed
    reaped: int  # runs dead_run_reaper failed after the kill (1 when the kill landed mid-run)


def reap_after_kill(deployment: Deployment) -> int:
    """Evaluate `dead_run_reaper` as the operator's daemon would after a kill: on its first tick
    once the killed run has logged nothing for GRACE_S (waited out on the real clock, which
    this suite runs on); the number of runs it failed."""
    instance = deployment.instance
    started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    if not started:
        return 0
    last = max(
        instance.get_records_for_run(run.run_id, limit=1, ascending=False)
        .records[0]
        .event_log_entry.timestamp
        for run in started
    )
    time.sleep(max(0.0, last + GRACE_S + 1 - clock.now_epoch()))
    dead_run_reaper(build_sensor_context(instance=instance))
    statuses = [instance.get_run_by_id(run.run_id).status for run in started]
    return statuses.count(DagsterRunStatus.FAILURE)


def kill_at_request(
    deployment: Deployment,
    asset: str,
    proxies: list[FaultProxy],
    at_request: int,
    day_: str | None = None,
) -> Kill:
    """Start a real run and SIGKILL its process group once `at_request` requests of it
    reached the proxies (or when it ends by itself first: then the kill missed)."""
    before = sum(p.requests for p in proxies)
    process = deployment.start_cli(asset, day_)
    deadline = time.monotonic() + min(CLI_TIMEOUT_S, deployment.remaining_s())
    while process.poll() is None and time.monotonic() < deadline:
        if sum(p.requests for p in proxies) - before >= at_request:
            break
        time.sleep(0.005)
    mid_run = kill_group(process)
    deployment.failed_runs[asset] += 1
    return Kill(asset, at_request, mid_run, reap_after_kill(deployment))


@pytest.mark.postgres
@pytest.mark.wall_clock  # real `dagster` processes run on the real clock; so must the sandbox
@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_sigkill_then_rerun_leaves_exactly_the_reference_and_no_secret(
    long_sandbox, long_company, tmp_path, monkeypatch, pg_database, seed
):
    rng = random.Random(seed)
    sandbox, days = long_sandbox, two_days()
    secrets = canaries()
    sandbox.slack.set_token(secrets["slack token"])
    sandbox.openai.valid_keys = {secrets["openai key"]}
    sandbox.pinecone.valid_keys = {secrets["pinecone key"]}
    monkeypatch.setenv(SLACK_ENV, secrets["slack token"])
    monkeypatch.setenv(REVOKED_ENV, secrets["revoked slack token"])
    monkeypatch.setenv("DAGSTER_PG_URL", pg_database)
    credentials = Credentials(
        SLACK_ENV, secrets["slack token"], secrets["openai key"], secrets["pinecone key"]
    )
    _, reference_inputs = build_reference(sandbox, tmp_path, credentials, days)

    with FaultProxies.for_sandbox(sandbox, KILL_PLAN, seed=seed, names=PROXIED) as proxies:
        slack_url = proxies.urls["slack"]
        deployment = Deployment(
            tmp_path / "killed",
            Endpoints.of(proxies.urls),
            credentials,
            f"kill-{seed}",
            dagster_yaml=PG_DAGSTER_YAML,
            extra_registry=(
                f"  - id: revoked\n    source: slack\n    base_url: {slack_url}\n"
                f"    credentials: {{token: {REVOKED_ENV}}}\n"
            ),
            connection_ids=("acme", "revoked"),
            budget_s=KILL_BUDGET_S,
        )
        slack_proxy = [proxies.proxies["slack"]]
        index_proxies = [proxies.proxies["openai"], proxies.proxies["pinecone"]]
        store = deployment.resources()["vector_store"]
        inputs_before = sandbox.openai.inputs_embedded

        deployment.until_success(lambda: deployment.cli("slack", days[0]), max_runs=3)
        sandbox.knobs.latency_ms = KILL_LATENCY_MS
        kills = [kill_at_request(deployment, "slack", slack_proxy, rng.randint(1, 12), days[1])]
        sandbox.knobs.latency_ms = 0
        deployment.until_success(lambda: deployment.cli("slack", days[1]), max_runs=3)
        sandbox.knobs.latency_ms = KILL_LATENCY_MS
        kills.append(kill_at_request(deployment, "vector_index", index_proxies, rng.randint(2, 5)))
        sandbox.knobs.latency_ms = 0
        recorded_at_kill = store.ledger(store.build()).count()
        deployment.until_success(lambda: deployment.cli("vector_index"), max_runs=3)
        inputs = sandbox.openai.inputs_embedded - inputs_before
        comparison = compare(sandbox, deployment.namespace, REFERENCE)

        deployment.until_success(lambda: deployment.cli("slack", days[1]), max_runs=3)
        rerun_before = sandbox.openai.inputs_embedded
        deployment.until_success(lambda: deployment.cli("vector_index"), max_runs=3)
        rerun_inputs = sandbox.openai.inputs_embedded - rerun_before
        rerun_embedded = deployment.last_metadata("vector_index")["chunks_embedded"]
        revoked_failed = not deployment.cli("slack", days[1], connection="revoked")
        fired, requests = proxies.fired, proxies.requests

    acl = private_chunk_leaks(sandbox, deployment, long_company)
    controls = {"control: revoked connection named": "'revoked'"}
    needles = {**secrets, **controls}
    scan = scan_postgres(pg_database.replace("+psycopg2", ""), needles).merge(
        scan_files([deployment.home, deployment.data], needles)
    )
    leaks = [(kind, where, label) for kind, where, label in scan.hits if label in secrets]
    failures = failed(
        {
            **{
                f"the {k.asset} kill at request {k.at_request} lands mid-run": k.mid_run
                for k in kills
            },
            **{
                f"the reaper fails the {k.asset} kill's run ({k.reaped})": k.reaped == k.mid_run
                for k in kills
            },
            f"the store equals the reference ({comparison})": comparison.exact,
            f"no private chunk shown to non-members ({acl})": acl.leaked == 0,
            "members find their own private chunks": acl.member_hits == acl.queries,
            f"an unchanged re-run embeds nothing ({rerun_inputs} inputs)": (
                rerun_embedded == rerun_inputs == 0
            ),
            "the revoked token's run fails": revoked_failed,
            "the PostgreSQL scan finds the revoked run's error (it reads the event log)": (
                scan.found("control: revoked connection named", "postgres") > 0
            ),
            "compute logs were scanned": scan.read["compute_log"] > 0,
            f"no secret anywhere ({sorted(set(leaks))[:10]})": not leaks,
        }
    )
    report.record(
        fired=fired,
        scenario="sigkill",
        seed=seed,
        requests=requests,
        kills=f"{sum(k.mid_run for k in kills)}/{len(kills)}, reaped "
        f"{sum(k.reaped for k in kills)} (ledger {recorded_at_kill})",
        runs=runs_figures(deployment),
        store=store_figures(comparison),
        duplicates=comparison.duplicates,
        acl=f"{acl.leaked}/{acl.queries} ({acl.identities} ids)",
        extra_inputs=inputs - reference_inputs,
        rerun=rerun_inputs,
        secrets=f"{len(leaks)} in {scan.read['postgres_row']} pg rows + "
        f"{sum(n for k, n in scan.read.items() if not k.startswith('postgres'))} files",
        verdict="ok" if not failures else "FAIL",
    )
    assert comparison.reference > 0
    assert not failures, (failures, run_errors(deployment.instance))
