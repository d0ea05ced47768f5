"""Per-store progress: where vector_index starts for a (store, embedder), and when a store is
emptied first so two embedders' vectors never share it."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from sync_pipelines.index.chunking import Chunk
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.event_cursor import EventCursor
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.progress import (
    EMPTYING,
    IndexProgress,
    Recorded,
    StoreProgress,
    empty_store,
    indexed,
    resume,
)
from sync_pipelines.index.stores.base import VectorRecord
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines_tests.test_index_ledger import postgres_or_skip

EMBEDDER = HashingEmbedder(dimension=32)
CURSOR = EventCursor(storage_id=42, timestamp=1000.0, recent={"/docs/a.parquet": 1000.0})


@pytest.fixture
def store(tmp_path) -> LanceStore:
    return LanceStore(tmp_path / "vectors")


@pytest.fixture
def ledger(tmp_path, store) -> ChunkLedger:
    return ChunkLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}", store_name=store.name)


@pytest.fixture
def progress(ledger) -> IndexProgress:
    return IndexProgress.beside(ledger)


def fill(store: LanceStore, ledger: ChunkLedger, docs: int = 3, chunks: int = 2) -> set[str]:
    """Vectors in the store and rows in the ledger, as a run leaves them."""
    written = [
        Chunk(f"d{d}#{n}", f"d{d}", n, f"text {d} {n}", f"hash{d}{n}", {}, f"meta{d}{n}", 1.0)
        for d in range(docs)
        for n in range(chunks)
    ]
    vectors = EMBEDDER.embed([c.text for c in written])
    records = [
        VectorRecord(c.vector_id, v, {"doc_id": c.doc_id, "access": ["all"], "text": c.text})
        for c, v in zip(written, vectors)
    ]
    store.upsert(records)
    ledger.record(written)
    return {c.vector_id for c in written}


def signed(signature: str, dimension: int = 32) -> HashingEmbedder:
    """A hashing embedder under another signature: another embedder, as far as the store
    can tell."""
    embedder = HashingEmbedder(dimension)
    embedder.signature = signature
    return embedder


def start(progress, store, ledger, embedder=EMBEDDER, recorded=None):
    warnings: list[str] = []
    return resume(progress, store, ledger, embedder, recorded, warnings.append), warnings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_database(request, tmp_path) -> IndexProgress:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'progress.sqlite'}"
    else:
        url = postgres_or_skip()
    engine = sa.create_engine(url)
    yield IndexProgress(engine)
    engine.dispose()


def test_progress_round_trips_and_is_one_row_per_store(any_database):
    progress = any_database
    x, y = (f"lance:/{uuid.uuid4().hex}:chunks" for _ in range(2))  # a shared PostgreSQL
    assert progress.get(x) is None
    progress.record(x, "hashing-v1:32", None)
    assert progress.get(x) == StoreProgress("hashing-v1:32", None)
    progress.record(x, "other:32", CURSOR)
    assert progress.get(x) == StoreProgress("other:32", CURSOR)
    assert progress.get(y) is None
    progress.record(y, "hashing-v1:32", CURSOR)
    assert progress.get(y) == StoreProgress("hashing-v1:32", CURSOR)
    assert progress.get(x) == StoreProgress("other:32", CURSOR)


def test_a_new_empty_store_is_rebuilt_from_the_first_event(progress, store, ledger):
    begun, warnings = start(progress, store, ledger)
    assert begun.rebuild and begun.cursor == EventCursor()
    assert f"no progress for store {store.name} with embedder {EMBEDDER.signature}" in (
        begun.reason
    )
    assert warnings == []  # nothing to delete
    # The rebuild is claimed for this embedder before anything is written.
    assert progress.get(store.name) == StoreProgress(EMBEDDER.signature, None)


def test_recorded_progress_is_where_the_next_run_starts(progress, store, ledger):
    ids = fill(store, ledger)
    progress.record(store.name, EMBEDDER.signature, CURSOR)
    begun, warnings = start(progress, store, ledger)
    assert not begun.rebuild and begun.cursor == CURSOR and warnings == []
    assert store.ids() == ledger.all_ids() == ids


def test_a_failed_rebuild_resumes_without_emptying_the_store_again(progress, store, ledger):
    start(progress, store, ledger)  # the rebuild begins...
    ids = fill(store, ledger)  # ...writes part of the store, then the run fails
    begun, warnings = start(progress, store, ledger)
    assert begun.rebuild and begun.cursor == EventCursor()
    assert "a rebuild is under way" in begun.reason
    assert warnings == [] and store.ids() == ledger.all_ids() == ids  # the ledger skips them


def test_another_embedders_store_is_emptied_before_the_rebuild(progress, store, ledger):
    fill(store, ledger)
    progress.record(store.name, "hashing-v1:32", CURSOR)
    begun, warnings = start(progress, store, ledger, embedder=signed("hashing-v2:32"))
    assert begun.rebuild and begun.cursor == EventCursor()
    assert store.count() == 0 and ledger.count() == 0
    (warning,) = warnings
    assert "held vectors of embedder hashing-v1:32, not hashing-v2:32" in warning
    assert "deleted its 6 vectors" in warning
    assert progress.get(store.name) == StoreProgress("hashing-v2:32", None)


def test_an_emptying_killed_part_way_is_finished_by_the_next_run(progress, store, ledger):
    fill(store, ledger)
    progress.record(store.name, EMPTYING, None)  # killed before the ledger was cleared
    recorded = Recorded(CURSOR, store.name, EMBEDDER.signature)  # no adopting an old cursor
    begun, warnings = start(progress, store, ledger, recorded=recorded)
    assert begun.rebuild and begun.cursor == EventCursor()
    assert "an emptying that was interrupted" in warnings[0]
    assert store.count() == ledger.count() == 0
    assert progress.get(store.name) == StoreProgress(EMBEDDER.signature, None)


def test_an_embedder_of_another_size_rebuilds_the_embedded_table(progress, store, ledger):
    # LanceDB is derived data: the table is dropped whole and created again at the new size
    # (a Pinecone index of another size fails instead: test_vector_index_errors).
    fill(store, ledger)
    progress.record(store.name, EMBEDDER.signature, CURSOR)
    wider = signed("hashing-v1:64", dimension=64)
    begun, warnings = start(progress, store, ledger, embedder=wider)
    assert begun.rebuild and f"embedder {EMBEDDER.signature}" in warnings[0]
    assert store.count() == ledger.count() == 0
    store.ensure_dimension(64)
    assert progress.get(store.name) == StoreProgress(wider.signature, None)


def test_a_legacy_metadata_cursor_is_adopted_when_store_and_embedder_match(progress, store, ledger):
    ids = fill(store, ledger)
    recorded = Recorded(CURSOR, store.name, EMBEDDER.signature)
    begun, warnings = start(progress, store, ledger, recorded=recorded)
    assert not begun.rebuild and begun.cursor == CURSOR and "adopted" in begun.reason
    assert warnings == [] and store.ids() == ids
    assert progress.get(store.name) is None  # written only once the run succeeds


@pytest.mark.parametrize(
    "recorded_store, recorded_embedder",
    [("lance:/elsewhere:chunks", EMBEDDER.signature), (None, "hashing-v0:32"), (None, None)],
)
def test_a_legacy_cursor_of_another_store_or_embedder_means_a_clean_rebuild(
    progress, store, ledger, recorded_store, recorded_embedder
):
    fill(store, ledger)
    recorded = Recorded(CURSOR, recorded_store or store.name, recorded_embedder)
    begun, warnings = start(progress, store, ledger, recorded=recorded)
    assert begun.rebuild and begun.cursor == EventCursor()
    (warning,) = warnings
    assert "an unrecorded embedder" in warning
    assert store.count() == 0 and ledger.count() == 0


def test_vectors_the_ledger_does_not_know_are_emptied_too(progress, store, ledger, tmp_path):
    fill(store, ledger)
    other = ChunkLedger(f"sqlite:///{tmp_path / 'fresh.sqlite'}", store_name=store.name)
    begun, warnings = start(IndexProgress.beside(other), store, other)
    assert begun.rebuild and store.count() == 0
    assert "deleted its 6 vectors" in warnings[0]


def test_empty_store_touches_only_its_own_partition(progress, store, ledger, tmp_path):
    fill(store, ledger)
    neighbour_store = LanceStore(tmp_path / "other")
    neighbour = ChunkLedger(ledger.engine.url.render_as_string(False), neighbour_store.name)
    kept = fill(neighbour_store, neighbour, docs=2)
    progress.record(store.name, EMBEDDER.signature, CURSOR)
    progress.record(neighbour_store.name, EMBEDDER.signature, CURSOR)
    assert indexed(ledger) == (3, 6)

    assert empty_store(progress, store, ledger, "hashing-v2:32") == 6
    assert (store.count(), ledger.count(), indexed(ledger)) == (0, 0, (0, 0))
    assert progress.get(store.name) == StoreProgress("hashing-v2:32", None)
    assert neighbour_store.ids() == neighbour.all_ids() == kept
    assert progress.get(neighbour_store.name) == StoreProgress(EMBEDDER.signature, CURSOR)


def test_opening_the_table_again_keeps_it(ledger):
    IndexProgress.beside(ledger)
    IndexProgress.beside(ledger)  # checkfirst: a second opener finds it
    assert sa.inspect(ledger.engine).has_table("index_progress")
