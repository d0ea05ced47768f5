"""A source's own resume position (SyncOutcome.cursor, e.g. a mailbox history id) is stored on
every day of the run's window and handed to the next single-day run of that day; a day that
never recorded one, and any multi-day run, starts without."""

from __future__ import annotations

import pytest
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines.sources.figures import CURSOR_KEY
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_tombstones_end_to_end import install_source, remove_source

pytestmark = pytest.mark.integration

CURSORS = '''
"""A throw-away source that counts its runs in its cursor and records what it was handed."""

from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import SyncOutcome
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.resource import SourceResourceBase

SEEN = []


class CursorsResource(SourceResourceBase):
    ENV_PREFIX = "CURSORS"
    DEFAULT_BASE_URL = "https://api.cursors.test"
    DOCUMENTED_RATE_PER_S = 2.0

    def client_for(self, connection):
        return self.http_client(connection)


def sync(run):
    SEEN.append(run.cursor)
    return SyncOutcome([], run.window.end_epoch, CallStats(), cursor=f"{len(SEEN)}")


SOURCE = SourceDeclaration(
    name="cursors",
    resource=CursorsResource,
    sync=sync,
    description="Cursors of a throw-away vendor.",
    schedule=Cadence(every_minutes=60, at_minute=7, stale_after_minutes=120),
    credentials_env={"token": "CURSORS_TOKEN"},
    docs_url="https://docs.cursors.test/",
)
'''


@pytest.fixture
def cursors(harness, tmp_path, monkeypatch):
    module = install_source(harness, tmp_path, monkeypatch, "cursors", CURSORS)
    harness.extra_resources = {"cursors": module.CursorsResource()}
    yield module, build_source_asset(registry.declaration("cursors"))
    remove_source("cursors", monkeypatch)


def stored_cursors(result) -> dict[str, str]:
    return {
        m.partition: m.metadata[CURSOR_KEY].value
        for m in result.asset_materializations_for_node("cursors")
    }


def run(harness, asset, first: str, last: str | None = None):
    return harness.sync(asset, [first, last or first])


def test_a_cursor_reaches_the_next_run_of_its_day_only(harness, cursors):
    module, asset = cursors
    assert stored_cursors(run(harness, asset, day(-1))) == {f"acme|{day(-1)}": "1"}
    run(harness, asset, day(-1))
    run(harness, asset, day(0))
    assert module.SEEN == [None, "1", None]


def test_a_multi_day_run_stores_its_cursor_on_every_day_and_starts_without(harness, cursors):
    module, asset = cursors
    run(harness, asset, day(-1))
    stored = stored_cursors(run(harness, asset, day(-2), day(0)))
    assert stored == {f"acme|{day(d)}": "2" for d in (-2, -1, 0)}
    run(harness, asset, day(-2))
    assert module.SEEN == [None, None, "2"]
