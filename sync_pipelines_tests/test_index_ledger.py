"""The chunk ledger on SQLite and PostgreSQL, and the embed-only-what-changed flow it drives."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from sync_pipelines.documents import Document
from sync_pipelines.index.chunking import Chunk, TextSplitter, chunk_document
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.stores.base import VectorRecord
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.tokens import TokenCounter

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def postgres_or_skip() -> str:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return POSTGRES_URL
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc.orig}")
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return postgres_or_skip()


@pytest.fixture
def open_ledger(db_url):
    """Opens ledgers on unique store names and removes their rows afterwards."""
    opened = []

    def open_(store: str | None = None) -> ChunkLedger:
        ledger = ChunkLedger(db_url, store or f"test-{uuid.uuid4().hex}")
        opened.append(ledger)
        return ledger

    yield open_
    for ledger in opened:
        ledger.forget(ledger.all_ids())
        ledger.close()


def chunk(doc: str, n: int, content_hash: str = "h") -> Chunk:
    return Chunk(f"{doc}#{n}", doc, n, "text", f"{content_hash}-{doc}-{n}", {})


def test_record_then_read_back(open_ledger):
    ledger = open_ledger()
    ledger.record([chunk("a", 0), chunk("a", 1), chunk("b", 0)])
    assert ledger.count() == 3
    assert ledger.all_ids() == {"a#0", "a#1", "b#0"}
    assert ledger.hashes(["a#1", "b#0", "zz#0"]) == {"a#1": "h-a-1", "b#0": "h-b-0"}
    assert ledger.ids_by_doc(["a", "b", "missing"]) == {"a": {"a#0", "a#1"}, "b": {"b#0"}}


def test_record_overwrites_and_forget_removes(open_ledger):
    ledger = open_ledger()
    ledger.record([chunk("a", 0), chunk("a", 1)])
    ledger.record([chunk("a", 0, "new"), chunk("a", 0, "newer")])  # last one in a batch wins
    assert ledger.hashes(["a#0", "a#1"]) == {"a#0": "newer-a-0", "a#1": "h-a-1"}
    ledger.forget(["a#1", "never-recorded"])
    assert ledger.all_ids() == {"a#0"} and ledger.count() == 1


def test_large_batches(open_ledger):
    ledger = open_ledger()
    chunks = [chunk(f"doc{d}", n) for d in range(130) for n in range(10)]  # 1300 rows
    ledger.record(chunks)
    ids = [c.vector_id for c in chunks]
    assert len(ledger.hashes(ids)) == 1300
    assert len(ledger.ids_by_doc([f"doc{d}" for d in range(130)])) == 130
    ledger.forget(ids[:1100])
    assert ledger.count() == 200


def test_stores_are_isolated_and_rows_persist(open_ledger):
    name = f"test-{uuid.uuid4().hex}"
    first = open_ledger(name)
    other = open_ledger()
    first.record([chunk("a", 0)])
    assert other.count() == 0 and other.hashes(["a#0"]) == {}
    reopened = open_ledger(name)
    assert reopened.hashes(["a#0"]) == {"a#0": "h-a-0"}


def test_rejects_unsupported_databases():
    with pytest.raises(ValueError, match="sqlite and postgresql"):
        ChunkLedger("mysql+pymysql://u@127.0.0.1/x", "s")


# --- the flow the ledger exists for ----------------------------------------------------------


class Indexer:
    """The vector_index steps in miniature: embed new/changed chunks (text or metadata; the
    updater's in-place metadata path is tested in test_metadata_updates.py), delete vanished
    ones."""

    def __init__(self, store, ledger, embedder):
        self.store, self.ledger, self.embedder = store, ledger, embedder
        self.splitter = TextSplitter(48, 8, TokenCounter())
        self.embedded = 0

    def sync(self, docs: list[Document], crash_before_record: bool = False) -> None:
        signature = self.embedder.signature
        chunks = [c for d in docs for c in chunk_document(d, self.splitter, signature)]
        known = self.ledger.rows([c.vector_id for c in chunks])
        todo = [
            c
            for c in chunks
            if (row := known.get(c.vector_id)) is None
            or (row.content_hash, row.metadata_hash) != (c.content_hash, c.metadata_hash)
        ]
        if todo:
            vectors = self.embedder.embed([c.text for c in todo])
            self.embedded += len(todo)
            self.store.ensure_dimension(self.embedder.dimension)
            records = [VectorRecord(c.vector_id, v, c.metadata) for c, v in zip(todo, vectors)]
            self.store.upsert(records)
            if crash_before_record:
                raise KeyboardInterrupt("killed")
            self.ledger.record(todo)
        current = {c.vector_id for c in chunks}
        previous = self.ledger.ids_by_doc([d.doc_id for d in docs])
        vanished = set().union(*previous.values()) - current if previous else set()
        self.store.delete(sorted(vanished))
        self.ledger.forget(vanished)


def doc(native: str, text: str, access=("all",)) -> Document:
    return Document(
        doc_id=Document.make_id("notion", "acme", native), source="notion", connection="acme",
        title=f"Page {native}", text=text, url=f"https://notion.test/{native}", author="ana",
        created_at="2024-01-01", updated_at="2024-01-02", timestamp_epoch=1704153600.0,
        access=access,
    )


LONG = " ".join(f"sentence {i} about the quarterly planning process." for i in range(20))


def test_only_new_or_changed_chunks_are_embedded_and_vanished_ones_deleted(open_ledger, tmp_path):
    store = LanceStore(tmp_path / "vectors")
    indexer = Indexer(store, open_ledger(store.name), HashingEmbedder(dimension=32))
    docs = [doc("p1", LONG), doc("p2", "A short page.")]

    indexer.sync(docs)
    first = indexer.embedded
    assert first > 5 and store.ids() == indexer.ledger.all_ids()

    indexer.sync(docs)  # nothing changed: nothing embedded
    assert indexer.embedded == first

    shorter = [
        doc("p1", LONG[: len(LONG) // 2]),
        doc("p2", "A short page.", access=("ana@acme.test",)),
    ]
    indexer.sync(shorter)
    expected = [c.vector_id for d in shorter for c in chunk_document(d, indexer.splitter, "x")]
    assert store.ids() == indexer.ledger.all_ids() == set(expected)
    assert indexer.embedded - first < first  # the unchanged first half was not re-embedded
    p2 = f"{shorter[1].doc_id}#0"
    assert store.fetch_metadata([p2])[p2]["access"] == ["ana@acme.test"]


def test_killed_run_is_finished_by_the_next_without_duplicates(open_ledger, tmp_path):
    store = LanceStore(tmp_path / "vectors")
    indexer = Indexer(store, open_ledger(store.name), HashingEmbedder(dimension=32))
    docs = [doc("p1", LONG), doc("p2", "Another page.")]
    with pytest.raises(KeyboardInterrupt):
        indexer.sync(docs, crash_before_record=True)
    assert indexer.ledger.count() == 0 and store.count() > 0

    indexer.sync(docs)
    assert store.ids() == indexer.ledger.all_ids()
    assert store.count() == len(store.ids())  # upserts by id: no duplicate rows
    embedded = indexer.embedded
    indexer.sync(docs)
    assert indexer.embedded == embedded
