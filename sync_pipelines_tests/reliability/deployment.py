"""One deployment of the Slack -> vector_index path, run in-process or as real `dagster`
processes, and re-run after failures as a user would.

Why its own DAGSTER_HOME, data dir, registry and Pinecone namespace: the reliability checks
compare what a disturbed deployment left behind with an undisturbed one over the same sandbox,
so nothing may be shared between them but the emulators.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.partitions import connections_partitions_name, partition_key
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sources.registry import source_asset
from sync_pipelines.sources.slack.client import SlackResource

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
slack_asset = source_asset("slack")
vector_index = build_vector_index([slack_asset])  # the product's asset, over the one source here
DIMENSION = 384  # the Pinecone emulator's default index dimension
CONNECTION = "acme"
# Several embed/upsert rounds per in-process run, so faults land between them. `dagster` runs
# keep the code location's default: run config naming one field of a resource replaces all of
# its environment-derived fields with class defaults (the store would become LanceDB).
BATCH_DOCUMENTS = 40
CLI_TIMEOUT_S = 120  # a `dagster` run that takes longer is stuck: killed and counted as failed


@dataclass(frozen=True)
class Credentials:
    """The environment variable the Slack token is read from, and every secret's value."""

    slack_env: str
    slack_token: str
    openai_key: str
    pinecone_key: str


@dataclass(frozen=True)
class Endpoints:
    """Where a deployment's clients go: straight to the emulators or through fault proxies."""

    slack: str
    openai: str
    pinecone: str

    @classmethod
    def of(cls, urls: dict[str, str]) -> Endpoints:
        return cls(urls["slack"], urls["openai"], urls["pinecone"])


@dataclass
class Deployment:
    """A DAGSTER_HOME, a data dir, a registry and a Pinecone namespace; runs counted by asset.

    `dagster_yaml` is written into DAGSTER_HOME (empty: SQLite storage in DAGSTER_HOME).
    """

    root: Path
    endpoints: Endpoints
    credentials: Credentials
    namespace: str
    dagster_yaml: str = ""
    slack_timeout_s: int = 3
    extra_registry: str = ""  # more YAML list items, e.g. a connection with a bad token
    connection_ids: tuple[str, ...] = (CONNECTION,)
    budget_s: float = 600.0  # `dagster` runs and re-runs stop once it is spent
    runs: Counter = field(default_factory=Counter)
    failed_runs: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.budget_s
        self.home.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.dagster_yaml:
            (self.home / "dagster.yaml").write_text(self.dagster_yaml)
        self.registry.write_text(
            "connections:\n"
            f"  - id: {CONNECTION}\n"
            "    source: slack\n"
            f"    base_url: {self.endpoints.slack}\n"
            f"    credentials: {{token: {self.credentials.slack_env}}}\n"
            "    options: {tier_limits_per_minute: {tier2: 0, tier3: 0, tier4: 0}}\n"
            + self.extra_registry
        )
        self.instance = DagsterInstance.from_config(str(self.home))
        self.instance.add_dynamic_partitions(
            connections_partitions_name("slack"), list(self.connection_ids)
        )

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "cli_logs"

    @property
    def registry(self) -> Path:
        return self.root / "connections.yaml"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.data / 'chunk_ledger.sqlite'}"

    # in-process runs, with resources built here

    def resources(self) -> dict:
        return {
            "connections": ConnectionRegistry(path=str(self.registry)),
            "documents": DocumentStore(root=str(self.data / "documents")),
            # no client pacing against the emulator; small pages so channels span several
            "slack": SlackResource(
                tier_limits_per_minute={},
                page_size=50,
                max_workers=2,
                timeout_s=self.slack_timeout_s,
            ),
            "embedder": EmbedderResource(
                kind="openai",
                openai_api_key=self.credentials.openai_key,
                openai_base_url=self.endpoints.openai,
                dimension=DIMENSION,
            ),
            "vector_store": VectorStoreResource(
                kind="pinecone",
                pinecone_api_key=self.credentials.pinecone_key,
                pinecone_host=self.endpoints.pinecone,
                pinecone_namespace=self.namespace,
                ledger_url=self.ledger_url,
                batch_documents=BATCH_DOCUMENTS,
            ),
        }

    def sync_slack(self, day: str, connection: str = CONNECTION) -> bool:
        return self._count(
            "slack",
            lambda: (
                materialize(
                    [slack_asset],
                    instance=self.instance,
                    resources=self.resources(),
                    partition_key=partition_key(day, connection),
                    raise_on_error=False,
                ).success
            ),
        )

    def index(self) -> bool:
        return self._count(
            "vector_index",
            lambda: (
                materialize(
                    [vector_index, slack_asset.to_source_asset()],
                    selection=[vector_index],
                    instance=self.instance,
                    resources=self.resources(),
                    raise_on_error=False,
                ).success
            ),
        )

    # real `dagster asset materialize` processes of the product's code location

    def cli_env(self) -> dict[str, str]:
        """What an operator exports: the code location builds its resources from these."""
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "SYNC_CONNECTIONS_FILE": str(self.registry),
            "SYNC_DATA_DIR": str(self.data),
            self.credentials.slack_env: self.credentials.slack_token,
            "SYNC_EMBEDDER": "openai",
            "OPENAI_API_KEY": self.credentials.openai_key,
            "OPENAI_BASE_URL": self.endpoints.openai,
            "SYNC_EMBEDDING_DIMENSIONS": str(DIMENSION),
            "SYNC_VECTOR_STORE": "pinecone",
            "PINECONE_API_KEY": self.credentials.pinecone_key,
            "PINECONE_HOST": self.endpoints.pinecone,
            "PINECONE_NAMESPACE": self.namespace,
            "SYNC_LEDGER_URL": self.ledger_url,
        }

    def start_cli(self, asset: str, day: str | None = None, connection: str = CONNECTION):
        """`dagster asset materialize` in its own process group (so a kill takes its workers)."""
        command = [str(DAGSTER), "asset", "materialize", "-m", "sync_pipelines.definitions"]
        command += ["--select", asset]
        if day is not None:
            command += ["--partition", partition_key(day, connection)]
        self.runs[asset] += 1
        log = (self.logs / f"{asset}-{self.runs[asset]}.log").open("w")
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.cli_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_cli(self, asset: str, process: subprocess.Popen) -> bool:
        """Whether the run succeeded; a run past CLI_TIMEOUT_S or the budget is killed and
        counted failed."""
        try:
            ok = process.wait(timeout=min(CLI_TIMEOUT_S, self.remaining_s())) == 0
        except subprocess.TimeoutExpired:
            kill_group(process)
            ok = False
        self.failed_runs[asset] += not ok
        return ok

    def cli(self, asset: str, day: str | None = None, connection: str = CONNECTION) -> bool:
        return self.wait_cli(asset, self.start_cli(asset, day, connection))

    def _count(self, asset: str, launch: Callable[[], bool]) -> bool:
        self.runs[asset] += 1
        ok = launch()
        self.failed_runs[asset] += not ok
        return ok

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def until_success(self, step: Callable[[], bool], max_runs: int) -> None:
        """What a user does after a failed run: launch it again, up to `max_runs` runs."""
        for _ in range(max_runs):
            if not self.remaining_s():
                raise AssertionError(f"the {self.budget_s:.0f} s budget of {self.root} is spent")
            if step():
                return
        raise AssertionError(f"{max_runs} runs in a row failed: {run_errors(self.instance)}")

    def last_metadata(self, asset: str) -> dict:
        record = self.instance.fetch_materializations(AssetKey(asset), limit=1).records[0]
        return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def kill_group(process: subprocess.Popen) -> bool:
    """SIGKILL the process group; whether the process was still running when it landed."""
    alive = process.poll() is None
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        alive = False
    process.wait()
    return alive


def run_errors(instance: DagsterInstance, limit: int = 3) -> list[str]:
    """Root causes of the last failed runs' step errors, to say why runs failed."""
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    errors = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]), limit=limit):
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
            error = entry.dagster_event.step_failure_data.error
            while error is not None and error.cause is not None:  # the root cause, not the wrapper
                error = error.cause
            if error is not None:
                errors.append(f"{error.cls_name}: {error.message.strip().splitlines()[0][:200]}")
    return errors
