"""Absence as a deletion signal, end to end: a throw-away source whose sync and reconciliation
answer scripted listings; vector_index deletes what it holds in a listing's scope and range
that the listing does not name, and nothing else. A failed or out-of-scope listing deletes
nothing, a listing that would empty its range is refused, a record newer than its listing is
never judged by it. The definitions give each reconciling source its job, daily schedule and
own pool."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dagster import Definitions, build_schedule_context, materialize

from sync_pipelines import clock
from sync_pipelines.documents import Document, DocumentFiles, Listing
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.errors import SourcePermanentError
from sync_pipelines.resources import ConnectionRegistry
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines.sources.reconcile import (
    build_reconcile_asset,
    build_reconcile_job,
    build_reconcile_schedule,
    reconcile_window,
)
from sync_pipelines.index.updater import ABSENT_GUARD_MIN
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_tombstones import page
from sync_pipelines_tests.test_tombstones_end_to_end import (
    install_source,
    remove_source,
    use_store,
)

pytestmark = pytest.mark.integration

RELICS = '''
"""A throw-away source whose sync and reconciliation answer what the test scripted."""

from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import SyncOutcome
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.resource import SourceResourceBase

SCRIPT = {"documents": [], "listings": [], "reconcile": []}


class RelicsResource(SourceResourceBase):
    ENV_PREFIX = "RELICS"
    DEFAULT_BASE_URL = "https://api.relics.test"
    DOCUMENTED_RATE_PER_S = 2.0

    def client_for(self, connection):
        return self.http_client(connection)


def sync(run):
    return SyncOutcome(
        list(SCRIPT["documents"]),
        run.window.end_epoch,
        CallStats(),
        listings=list(SCRIPT["listings"]),
    )


def list_ids(run):
    answer = SCRIPT["reconcile"]
    if isinstance(answer, Exception):
        raise answer
    SCRIPT["window"] = run.window
    return list(answer)


SOURCE = SourceDeclaration(
    name="relics",
    resource=RelicsResource,
    sync=sync,
    description="Relics of a throw-away vendor.",
    schedule=Cadence(every_minutes=60, at_minute=9, stale_after_minutes=120),
    credentials_env={"token": "RELICS_TOKEN"},
    docs_url="https://docs.relics.test/",
    reconcile=Reconciliation(list_ids=list_ids, days=30, at_hour=4, at_minute=25),
)
'''

SCOPE = "relics:acme:"


@pytest.fixture
def relics(harness, tmp_path, monkeypatch):
    """The harness with a `relics` source on the sources' search path, one `acme`
    connection, and a vector_index reading both its assets."""
    module = install_source(harness, tmp_path, monkeypatch, "relics", RELICS)
    harness.extra_resources = {"relics": module.RelicsResource()}
    use_store(harness, "lance")
    yield Pipeline(harness, module)
    remove_source("relics", monkeypatch)


class Pipeline:
    def __init__(self, harness, module):
        self.harness = harness
        self.module = module
        self.declaration = registry.declaration("relics")
        self.asset = build_source_asset(self.declaration)
        self.reconcile_asset = build_reconcile_asset(self.declaration)
        self.vector_index = build_vector_index([self.asset, self.reconcile_asset])

    def sync(self, documents=(), listings=()):
        self.module.SCRIPT.update(documents=list(documents), listings=list(listings))
        return self.harness.metadata(self.harness.sync(self.asset, [day(0)]), "relics")

    def reconcile(self, answer, raise_on_error=True):
        self.module.SCRIPT["reconcile"] = answer
        return materialize(
            [self.reconcile_asset],
            partition_key="acme",
            instance=self.harness.instance,
            resources=self.harness.resources(),
            raise_on_error=raise_on_error,
        )

    def indexed(self) -> dict:
        result = materialize(
            [
                self.vector_index,
                self.asset.to_source_asset(),
                self.reconcile_asset.to_source_asset(),
            ],
            selection=[self.vector_index],
            instance=self.harness.instance,
            resources=self.harness.resources(),
        )
        return self.harness.metadata(result, "vector_index")

    def held(self) -> set[str]:
        ledger = self.harness.vector_store.ledger(self.harness.vector_store.build())
        return {vid.split("#")[0] for vid in ledger.all_ids()}


def relic(i: int, hours_ago: float) -> Document:
    """A relic document whose partition time is `hours_ago` before the pinned now."""
    base = page(i % 4)
    return replace(
        base,
        doc_id=Document.make_id("relics", "acme", f"r{i}"),
        source="relics",
        text=f"{base.text} Relic number {i}.",
        timestamp_epoch=clock.now_epoch() - hours_ago * 3600,
    )


def listing(docs, start_hours_ago=24 * 30, listed_at=None, scope=SCOPE) -> Listing:
    now = clock.now_epoch()
    return Listing(
        scope=scope,
        start=now - start_hours_ago * 3600,
        end=now + 3600,
        doc_ids=frozenset(d.doc_id for d in docs),
        listed_at=now if listed_at is None else listed_at,
    )


def test_the_reconciliation_deletes_what_its_listing_no_longer_names(relics):
    docs = [relic(i, hours_ago=5 + i) for i in range(4)]
    relics.sync(docs)
    relics.indexed()
    assert relics.held() == {d.doc_id for d in docs}

    answer = listing(docs[1:])
    result = relics.reconcile([answer])
    meta = relics.harness.metadata(result, "relics_reconcile")
    assert (meta["ids_listed"], meta["listings"], meta["range_days"]) == (3, 1, 30)
    (path,) = meta["documents_files"]
    assert DocumentFiles.read_entries(path) == [answer]
    window = relics.module.SCRIPT["window"]
    assert len(window.days) == 30 and window.days[-1] == clock.today().isoformat()

    indexed = relics.indexed()
    assert (indexed["listings"], indexed["documents_absent"]) == (1, 1)
    assert indexed["documents_deleted"] == 1 and indexed["chunks_embedded"] == 0
    assert relics.held() == {d.doc_id for d in docs[1:]}

    # The same listing again, or one that lists everything: nothing more to delete.
    relics.reconcile([listing(docs)])
    assert relics.indexed()["documents_absent"] == 0
    assert relics.held() == {d.doc_id for d in docs[1:]}


def test_a_failed_listing_deletes_nothing(relics):
    docs = [relic(i, hours_ago=5 + i) for i in range(3)]
    relics.sync(docs)
    relics.indexed()
    # A page refused for good (a transient one fails the same way, after Dagster's retries).
    result = relics.reconcile(SourcePermanentError("page 3 of the listing: HTTP 400"), False)
    assert not result.success
    assert relics.harness.instance.get_latest_materialization_event(
        relics.reconcile_asset.key
    ) is None
    assert relics.indexed()["listings"] == 0
    assert relics.held() == {d.doc_id for d in docs}


def test_a_listing_outside_the_connection_is_refused_before_it_is_written(relics):
    docs = [relic(i, hours_ago=5) for i in range(2)]
    relics.sync(docs)
    relics.indexed()
    result = relics.reconcile([listing([], scope="relics:")], raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "outside 'relics:acme:'" in str(failure.step_failure_data.error.message)
    assert relics.indexed()["listings"] == 0
    assert relics.held() == {d.doc_id for d in docs}


def test_only_the_listing_range_and_what_existed_when_it_began_are_judged(relics):
    old = relic(0, hours_ago=24 * 40)  # before the range
    inside = relic(1, hours_ago=24 * 3)
    fresh = relic(2, hours_ago=0.5)  # after the listing began
    relics.sync([old, inside, fresh])
    relics.indexed()
    began = clock.now_epoch() - 3600
    relics.reconcile([listing([], listed_at=began)])
    meta = relics.indexed()
    assert meta["documents_absent"] == 1
    assert relics.held() == {old.doc_id, fresh.doc_id}


def test_a_listing_that_would_empty_its_range_is_refused(relics):
    docs = [relic(i, hours_ago=2 + i) for i in range(ABSENT_GUARD_MIN + 2)]
    relics.sync(docs)
    relics.indexed()
    relics.reconcile([listing(docs[:1])])
    meta = relics.indexed()
    assert (meta["listings"], meta["listings_refused"], meta["documents_deleted"]) == (1, 1, 0)
    assert relics.held() == {d.doc_id for d in docs}
    # A listing that misses a few of many is applied.
    relics.reconcile([listing(docs[3:])])
    assert relics.indexed()["documents_absent"] == 3
    # An operator who knows the mass deletion is real lets it through.
    relics.harness.vector_store = relics.harness.vector_store.model_copy(
        update={"max_absent_share": 1.0}
    )
    relics.reconcile([listing(docs[3:4])])
    assert relics.indexed()["documents_absent"] == len(docs) - 4
    assert relics.held() == {docs[3].doc_id}


def test_the_mass_deletion_share_is_read_from_the_environment(monkeypatch):
    from sync_pipelines.definitions import MAX_DELETE_SHARE_ENV, vector_store_resource

    assert vector_store_resource().max_absent_share == 0.5
    monkeypatch.setenv(MAX_DELETE_SHARE_ENV, "0.9")
    assert vector_store_resource().max_absent_share == 0.9
    monkeypatch.setenv(MAX_DELETE_SHARE_ENV, "most")
    with pytest.raises(ValueError, match="SYNC_LISTING_MAX_DELETE_SHARE must be a number"):
        vector_store_resource()


def test_a_sync_listing_deletes_like_a_reconciliation_after_its_own_documents(relics):
    docs = [relic(i, hours_ago=3 + i) for i in range(3)]
    relics.sync(docs)
    relics.indexed()
    # One run: a new document and a listing of the day that no longer shows docs[0].
    new = relic(7, hours_ago=1)
    written = relics.sync([new], [listing([*docs[1:], new], start_hours_ago=24)])
    assert written["documents_written"] == 1
    meta = relics.indexed()
    assert (meta["documents_absent"], meta["chunks_embedded"] > 0) == (1, True)
    assert relics.held() == {d.doc_id for d in [*docs[1:], new]}


def test_each_reconciling_source_has_a_job_a_daily_schedule_and_its_own_pool(relics):
    declaration = relics.declaration
    assert declaration.reconcile_pool == "relics_reconcile" != declaration.pool
    assert relics.reconcile_asset.op.pool == "relics_reconcile"
    job = build_reconcile_job(declaration, relics.reconcile_asset)
    schedule = build_reconcile_schedule(declaration, job)
    assert (schedule.cron_schedule, job.name) == ("25 4 * * *", "relics_reconciliation")
    connections = ConnectionRegistry(path=str(relics.harness.registry))
    defs = Definitions(
        assets=[relics.reconcile_asset],
        jobs=[job],
        schedules=[schedule],
        resources={**relics.harness.resources(), "connections": connections},
    )
    context = build_schedule_context(
        instance=relics.harness.instance,
        scheduled_execution_time=clock.now(),
        resources={"connections": connections},
        repository_def=defs.get_repository_def(),
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "acme"
    assert request.tags["sync/kind"] == "reconcile" and request.tags["sync/connection"] == "acme"


def test_the_window_is_the_last_days_up_to_today():
    window = reconcile_window("acme", 30)
    assert window.days[-1] == clock.today().isoformat() and len(window.days) == 30
    assert window.end_epoch - window.start_epoch == 30 * 86400
