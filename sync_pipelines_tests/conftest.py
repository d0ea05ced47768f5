"""Fixtures for the integration tests: a sandbox company, its emulators, a Dagster instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import pytest
from dagster import DagsterInstance, instance_for_test, materialize

from sync_pipelines import clock
from sync_pipelines.documents import DocumentFiles
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.partitions import connections_partitions_name, partition_key
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines.sources.registry import names
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines.warehouse.destination import WarehouseResource
from sync_pipelines_tests.pinned_clock import PinnedClock, pinned_instant

GOOD_TOKEN_ENV = "TEST_SLACK_TOKEN_ACME"
BAD_TOKEN_ENV = "TEST_SLACK_TOKEN_BROKEN"


def today() -> datetime:
    return clock.now().replace(hour=0, minute=0, second=0, microsecond=0)


def day(offset: int) -> str:
    """A partition date `offset` days from today (0 = today, -1 = yesterday)."""
    return (today() + timedelta(days=offset)).strftime("%Y-%m-%d")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "wall_clock: runs on the real clock (drives processes the pin cannot reach)"
    )


@pytest.fixture(scope="session", autouse=True)
def pinned_clock() -> Iterator[PinnedClock]:
    """Every test process runs at the pinned instant (see pinned_clock.py)."""
    pinned = PinnedClock(pinned_instant())
    pinned.pin()
    yield pinned
    pinned.release()


@pytest.fixture(scope="module", autouse=True)
def _pinned_per_module(pinned_clock) -> Iterator[None]:
    """Each module starts at the instant (module-scoped autouse fixtures come before the
    module's own fixtures, so its sandboxes are generated after the re-pin)."""
    pinned_clock.restart()
    yield


@pytest.fixture(autouse=True)
def _wall_clock_when_marked(request, pinned_clock) -> Iterator[None]:
    if request.node.get_closest_marker("wall_clock") is None:
        yield
        return
    pinned_clock.release()
    try:
        yield
    finally:
        pinned_clock.pin()


@pytest.fixture(autouse=True)
def _no_leaked_defs_state_storage() -> Iterator[None]:
    """Dagster's current DefsStateStorage is a context variable that each entered instance
    sets and resets on exit. A test that leaves an instance or evaluation context un-exited
    (see test_operations.tick) has it reset later by the garbage collector, pointing at a
    disposed instance under whatever test runs then. Start each test without one (cheap; the
    contexts themselves are exited by the tests)."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
    yield


@pytest.fixture
def company() -> Company:
    return Company.generate(seed=11, messages=900, days=4)


@pytest.fixture
def sandbox(company):
    with Sandbox(company=company) as sb:
        yield sb


@dataclass
class SyncHarness:
    """One test's Dagster instance, registry, files and resources, plus run helpers."""

    tmp: Path
    sandbox: Sandbox
    instance: DagsterInstance
    registry: Path
    slack: SlackResource
    embedder: EmbedderResource
    vector_store: VectorStoreResource

    extra_resources: dict = field(default_factory=dict)
    warehouse: WarehouseResource | None = None

    def __post_init__(self) -> None:
        if self.warehouse is None:  # CRM tables in the test's own DuckDB files
            self.warehouse = WarehouseResource(url=None, data_dir=str(self.tmp / "data"))

    def resources(self) -> dict:
        return {
            "connections": ConnectionRegistry(path=str(self.registry)),
            "documents": DocumentStore(root=str(self.tmp / "documents")),
            "slack": self.slack,
            "embedder": self.embedder,
            "vector_store": self.vector_store,
            "warehouse": self.warehouse,
            **self.extra_resources,
        }

    def sync(self, asset, days: list[str], connection: str = "acme", raise_on_error=True):
        """Materialize a source asset for one connection over a range of days, in one run."""
        first, last = min(days), max(days)
        kwargs = {}
        if first == last:
            kwargs["partition_key"] = partition_key(first, connection)
        else:
            kwargs["tags"] = {
                "dagster/asset_partition_range_start": f"{connection}|{first}",
                "dagster/asset_partition_range_end": f"{connection}|{last}",
            }
        return materialize(
            [asset],
            instance=self.instance,
            resources=self.resources(),
            raise_on_error=raise_on_error,
            **kwargs,
        )

    def sync_slack(self, days: list[str], connection: str = "acme", raise_on_error=True):
        from sync_pipelines.definitions import slack_asset

        return self.sync(slack_asset, days, connection, raise_on_error)

    def index(self, raise_on_error=True):
        from sync_pipelines.definitions import slack_asset, vector_index

        return materialize(
            [vector_index, slack_asset.to_source_asset()],
            selection=[vector_index],
            instance=self.instance,
            resources=self.resources(),
            raise_on_error=raise_on_error,
        )

    @staticmethod
    def metadata(result, node: str) -> dict:
        (event,) = result.asset_materializations_for_node(node)[-1:]
        return {k: v.value for k, v in event.metadata.items()}

    def documents(self, result, node: str = "slack") -> list:
        paths = self.metadata(result, node)["documents_files"]
        return [d for p in paths for d in DocumentFiles.read(p)]


FIREFLIES_KEY_ENV = "TEST_FIREFLIES_KEY"


def use_fireflies(harness: SyncHarness, sandbox: Sandbox, monkeypatch) -> SyncHarness:
    """The harness with one `acme` Fireflies connection on the emulator, unpaced, small pages."""
    from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
    from sync_pipelines.sources.fireflies.client import FirefliesResource

    monkeypatch.setenv(FIREFLIES_KEY_ENV, SANDBOX_FIREFLIES_API_KEY)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: fireflies\n"
        f"    base_url: {sandbox.urls['fireflies']}\n"
        f"    credentials: {{api_key: {FIREFLIES_KEY_ENV}}}\n"
    )
    harness.extra_resources = {
        "fireflies": FirefliesResource(
            base_url="http://unused.invalid", rate_per_s=0, page_size=10, timeout_s=10
        )
    }
    return harness


def write_registry(path: Path, sandbox: Sandbox, extra: str = "") -> None:
    path.write_text(
        "connections:\n"
        "  - id: acme\n"
        "    source: slack\n"
        f"    base_url: {sandbox.urls['slack']}\n"
        f"    credentials: {{token: {GOOD_TOKEN_ENV}}}\n"
        "  - id: broken\n"
        "    source: slack\n"
        f"    base_url: {sandbox.urls['slack']}\n"
        f"    credentials: {{token: {BAD_TOKEN_ENV}}}\n" + extra
    )


@pytest.fixture
def harness(tmp_path, sandbox, monkeypatch) -> Iterator[SyncHarness]:
    monkeypatch.setenv(GOOD_TOKEN_ENV, SANDBOX_SLACK_TOKEN)
    monkeypatch.setenv(BAD_TOKEN_ENV, "xoxb-revoked")
    registry = tmp_path / "connections.yaml"
    write_registry(registry, sandbox)
    with instance_for_test() as instance:
        yield from _harness(tmp_path, sandbox, registry, instance)


def _harness(tmp_path, sandbox, registry, instance):
    for source in names():
        instance.add_dynamic_partitions(connections_partitions_name(source), ["acme", "broken"])
    yield SyncHarness(
        tmp=tmp_path,
        sandbox=sandbox,
        instance=instance,
        registry=registry,
        # No client-side pacing against the emulator; small pages so channels span several.
        slack=SlackResource(
            base_url=sandbox.urls["slack"],
            tier_limits_per_minute={},
            page_size=50,
            max_workers=2,
            timeout_s=5,
        ),
        embedder=EmbedderResource(kind="hashing"),
        vector_store=VectorStoreResource(
            kind="lance",
            lance_path=str(tmp_path / "vectors"),
            ledger_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        ),
    )
