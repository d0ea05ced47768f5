"""Deletions reach search end to end: a source whose sync answers tombstones writes them to its
documents file and reports them per partition; vector_index then takes the documents out of
the store and the ledger (LanceDB and the Pinecone emulator), ignores unknown ids, indexes a
returning document again, and converges after a run that failed between the store delete and
the ledger forget."""

from __future__ import annotations

import importlib
import sys
import textwrap
from dataclasses import replace

import pytest
from dagster import materialize

from sync_pipelines import clock
from sync_pipelines.documents import Document, Tombstone
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.index.search import search
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_tombstones import gone, ids_of, page

pytestmark = pytest.mark.integration

GIZMOS = '''
"""A throw-away source that answers what the test scripted in SCRIPT."""

from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import SyncOutcome
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.resource import SourceResourceBase

SCRIPT = {"documents": [], "tombstones": []}


class GizmosResource(SourceResourceBase):
    ENV_PREFIX = "GIZMOS"
    DEFAULT_BASE_URL = "https://api.gizmos.test"
    DOCUMENTED_RATE_PER_S = 2.0

    def client_for(self, connection):
        return self.http_client(connection)


def sync(run):
    return SyncOutcome(
        list(SCRIPT["documents"]),
        run.window.end_epoch,
        CallStats(),
        tombstones=list(SCRIPT["tombstones"]),
    )


SOURCE = SourceDeclaration(
    name="gizmos",
    resource=GizmosResource,
    sync=sync,
    description="Gizmos of a throw-away vendor.",
    schedule=Cadence(every_minutes=60, at_minute=7, stale_after_minutes=120),
    credentials_env={"token": "GIZMOS_TOKEN"},
    docs_url="https://docs.gizmos.test/",
)
'''


def install_source(harness, tmp_path, monkeypatch, name: str, text: str):
    """A throw-away source `name` (its `__init__.py` is `text`, its token `<NAME>_TOKEN`) on
    the sources' search path with one `acme` connection; answers its module. Undo with
    `remove_source`."""
    import sync_pipelines.sources as sources_package

    importlib.import_module("sync_pipelines.definitions")  # built without it
    folder = tmp_path / "extra" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(text))
    monkeypatch.setattr(
        sources_package, "__path__", [*sources_package.__path__, str(folder.parent)]
    )
    registry.refresh()
    token = f"{name.upper()}_TOKEN"
    monkeypatch.setenv(token, "secret")
    harness.registry.write_text(
        f"connections:\n  - {{id: acme, source: {name}, credentials: {{token: {token}}}}}\n"
    )
    harness.instance.add_dynamic_partitions(connections_partitions_name(name), ["acme"])
    return importlib.import_module(f"sync_pipelines.sources.{name}")


def remove_source(name: str, monkeypatch) -> None:
    sys.modules.pop(f"sync_pipelines.sources.{name}", None)
    monkeypatch.undo()
    registry.refresh()


@pytest.fixture
def gizmos(harness, tmp_path, monkeypatch):
    """The harness with a `gizmos` source and a vector_index that reads it. Yields the
    source's module (its SCRIPT), its asset and the vector_index."""
    module = install_source(harness, tmp_path, monkeypatch, "gizmos", GIZMOS)
    harness.extra_resources = {"gizmos": module.GizmosResource()}
    asset = build_source_asset(registry.declaration("gizmos"))
    yield module, asset, build_vector_index([asset])
    remove_source("gizmos", monkeypatch)


def gizmo(i: int) -> Document:
    return replace(page(i), doc_id=Document.make_id("gizmos", "acme", f"g{i}"), source="gizmos")


def use_store(harness, kind: str) -> None:
    """The harness's index on `kind`, in chunks small enough that a page spans several."""
    harness.embedder = EmbedderResource(kind="hashing", chunk_tokens=32, chunk_overlap_tokens=4)
    ledger_url = f"sqlite:///{harness.tmp / 'ledger.sqlite'}"
    if kind == "pinecone":
        harness.vector_store = VectorStoreResource(
            kind="pinecone",
            pinecone_api_key=SANDBOX_PINECONE_KEY,
            pinecone_host=harness.sandbox.pinecone_host,
            pinecone_namespace="tombstones",
            ledger_url=ledger_url,
        )
    else:
        harness.vector_store = VectorStoreResource(
            kind="lance", lance_path=str(harness.tmp / "vectors"), ledger_url=ledger_url
        )


class Pipeline:
    """The gizmos source and its vector_index on the harness's instance."""

    def __init__(self, harness, gizmos):
        self.harness = harness
        self.module, self.asset, self.vector_index = gizmos

    def sync(self, documents=(), tombstones=()) -> dict:
        self.module.SCRIPT.update(documents=list(documents), tombstones=list(tombstones))
        result = self.harness.sync(self.asset, [day(-1)])
        return self.harness.metadata(result, "gizmos")

    def index(self, raise_on_error=True):
        return materialize(
            [self.vector_index, self.asset.to_source_asset()],
            selection=[self.vector_index],
            instance=self.harness.instance,
            resources=self.harness.resources(),
            raise_on_error=raise_on_error,
        )

    def indexed(self) -> dict:
        return self.harness.metadata(self.index(), "vector_index")

    def found(self, doc: Document) -> bool:
        embedder = self.harness.embedder.build()
        store = self.harness.vector_store.build()
        hits = search(doc.text, embedder, store, top_k=5)
        return doc.doc_id in {hit.doc_id for hit in hits}


@pytest.mark.parametrize("kind", ["lance", "pinecone"])
def test_a_source_tombstone_takes_its_document_out_of_search(harness, gizmos, kind):
    use_store(harness, kind)
    pipeline = Pipeline(harness, gizmos)
    docs = [gizmo(i) for i in range(3)]
    pipeline.sync(docs)
    first = pipeline.indexed()
    assert first["documents"] == 3 and first["tombstones"] == 0
    assert pipeline.found(docs[0])
    doomed, later = (ids_of(harness.vector_store.build(), d) for d in (docs[0], docs[2]))

    now = clock.now_epoch()
    written = pipeline.sync(docs[1:], [gone(docs[0], now)])
    assert (written["documents_written"], written["tombstones_written"]) == (2, 1)
    assert written["run_tombstones_written"] == 1
    meta = pipeline.indexed()
    assert (meta["tombstones"], meta["documents_deleted"]) == (1, 1)
    assert meta["vectors_deleted"] == len(doomed) >= 2 and meta["chunks_embedded"] == 0
    assert not pipeline.found(docs[0]) and pipeline.found(docs[1])

    unknown = Tombstone(Document.make_id("gizmos", "acme", "never"), "deleted upstream", now)
    pipeline.sync(tombstones=[unknown])
    meta = pipeline.indexed()
    assert (meta["tombstones"], meta["documents_deleted"], meta["vectors_deleted"]) == (1, 0, 0)

    # In one run a document and its tombstone: the later observation wins (documents.settle).
    written = pipeline.sync([docs[0], docs[2]], [gone(docs[2], now)])
    assert (written["documents_written"], written["tombstones_written"]) == (1, 1)
    meta = pipeline.indexed()
    assert (meta["chunks_embedded"], meta["vectors_deleted"]) == (len(doomed), len(later))
    assert pipeline.found(docs[0]) and not pipeline.found(docs[2])
    ledger = harness.vector_store.ledger(harness.vector_store.build())
    assert harness.vector_store.build().ids() == ledger.all_ids()


@pytest.mark.parametrize("kind", ["lance", "pinecone"])
def test_vector_index_failed_between_store_delete_and_ledger_forget_converges(
    harness, gizmos, kind, monkeypatch
):
    """A run that dies after the store delete records no materialization, so the next run
    reads the same tombstone again and finishes the job."""
    use_store(harness, kind)
    pipeline = Pipeline(harness, gizmos)
    docs = [gizmo(i) for i in range(2)]
    pipeline.sync(docs)
    pipeline.indexed()
    store = harness.vector_store.build()
    ledger = harness.vector_store.ledger(store)
    everything, doomed = store.ids(), ids_of(store, docs[0])

    pipeline.sync(docs[1:], [gone(docs[0], clock.now_epoch())])

    def killed(self, ids):
        raise ValueError("killed before the ledger forgot the deleted ids")

    forget = ChunkLedger.forget
    monkeypatch.setattr(ChunkLedger, "forget", killed)
    assert not pipeline.index(raise_on_error=False).success
    monkeypatch.setattr(ChunkLedger, "forget", forget)
    assert store.ids() == everything - doomed and ledger.all_ids() == everything

    meta = pipeline.indexed()
    assert (meta["documents_deleted"], meta["vectors_deleted"]) == (1, len(doomed))
    assert store.ids() == ledger.all_ids() == everything - doomed
    assert not pipeline.found(docs[0]) and pipeline.found(docs[1])
    assert pipeline.indexed()["tombstones"] == 0, "the tombstone is applied once it succeeded"
