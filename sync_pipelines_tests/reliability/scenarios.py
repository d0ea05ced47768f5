"""The review's fault scenario: a reference run, then the same days through a seeded fault
proxy, re-run after failures like a user would, then an unchanged re-run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sync_pipelines_sandbox.fault_proxy import FaultPlan, FaultProxies
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_tests.reliability.checks import Comparison, compare
from sync_pipelines_tests.reliability.deployment import (
    Credentials,
    Deployment,
    Endpoints,
    run_errors,
)

REFERENCE = "reference"
LONG_COMPANY = {"seed": 7, "messages": 1000, "days": 4}  # two synced days: about 600 vectors
PROXIED = ("slack", "openai", "pinecone")


@dataclass(frozen=True)
class SeedOutcome:
    """What one fault seed did: faults fired, runs it took, and what it left behind."""

    seed: int
    fired: Counter
    requests: int
    runs: Counter
    failed_runs: Counter
    comparison: Comparison
    embedding_inputs: int  # texts the embeddings server was sent (its own count) until done
    rerun_chunks_embedded: int  # by the unchanged re-run (sync + index) afterwards
    rerun_inputs: int
    errors: list[str]  # root causes of the failed runs, for the report


def build_reference(
    sandbox: Sandbox, root: Path, credentials: Credentials, days: list[str], **options
) -> tuple[Deployment, int]:
    """The undisturbed run: the namespace every other one must equal, and its embedding inputs."""
    reference = Deployment(
        root / REFERENCE, Endpoints.of(sandbox.urls), credentials, REFERENCE, **options
    )
    for day in days:
        reference.until_success(lambda day=day: reference.sync_slack(day), max_runs=1)
    before = sandbox.openai.inputs_embedded
    reference.until_success(reference.index, max_runs=1)
    return reference, sandbox.openai.inputs_embedded - before


def run_under_faults(
    sandbox: Sandbox,
    root: Path,
    credentials: Credentials,
    days: list[str],
    seed: int,
    plan: FaultPlan,
    max_runs: int = 6,
    **options,
) -> tuple[Deployment, SeedOutcome]:
    """Sync `days` and index them with a fault proxy in front of Slack, OpenAI and Pinecone;
    then sync the last day again and index: nothing changed, so nothing may be embedded.
    `options` go to the Deployment (e.g. slack_timeout_s)."""
    with FaultProxies.for_sandbox(sandbox, plan, seed=seed, names=PROXIED) as proxies:
        deployment = Deployment(
            root / f"seed-{seed}",
            Endpoints.of(proxies.urls),
            credentials,
            f"faults-{seed}",
            **options,
        )
        inputs_before = sandbox.openai.inputs_embedded
        for day in days:
            deployment.until_success(lambda day=day: deployment.sync_slack(day), max_runs)
        deployment.until_success(deployment.index, max_runs)
        inputs = sandbox.openai.inputs_embedded - inputs_before
        deployment.until_success(lambda: deployment.sync_slack(days[-1]), max_runs)
        rerun_before = sandbox.openai.inputs_embedded
        deployment.until_success(deployment.index, max_runs)
        outcome = SeedOutcome(
            seed=seed,
            fired=proxies.fired,
            requests=proxies.requests,
            runs=Counter(deployment.runs),
            failed_runs=Counter(deployment.failed_runs),
            comparison=compare(sandbox, deployment.namespace, REFERENCE),
            embedding_inputs=inputs,
            rerun_chunks_embedded=deployment.last_metadata("vector_index")["chunks_embedded"],
            rerun_inputs=sandbox.openai.inputs_embedded - rerun_before,
            errors=run_errors(deployment.instance, limit=20),
        )
    return deployment, outcome
