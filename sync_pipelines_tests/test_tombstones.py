"""Deletions reach the index: a source's tombstones travel in its documents file, and the
index updater removes every vector of a tombstoned document (by id, then from the ledger) on
both stores. Unknown ids are a no-op, a returning document is embedded again, file order
decides between a document and its tombstone, and a run killed between the store delete and
the ledger forget converges when re-run. test_tombstones_end_to_end.py runs the same through
a source asset and vector_index."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import pytest

from sync_pipelines.documents import (
    DOCUMENT_COLUMNS,
    Document,
    DocumentFiles,
    Tombstone,
    settle,
)
from sync_pipelines.index.chunking import TextSplitter, chunk_document
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.search import search
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.stores.pinecone import PineconeStore
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.index.updater import IndexUpdater
from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import SyncOutcome, SyncResult
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_sandbox.server import Sandbox

DIM = 64
SPLITTER = TextSplitter(64, 8, TokenCounter())
TOPICS = ["harbour cranes", "payroll audit", "kiln firing", "glacier survey"]


def page(i: int, version: str = "") -> Document:
    """A page of several chunks about its own topic."""
    topic = TOPICS[i]
    text = " ".join(f"Note {n} on the {topic} {version} plan, step {n} of many." for n in range(6))
    return Document(
        doc_id=Document.make_id("wiki", "acme", f"p{i}"),
        source="wiki",
        connection="acme",
        title=f"The {topic}",
        text=text,
        url=f"https://wiki.test/p{i}",
        author="ana",
        created_at="2026-01-01",
        updated_at="2026-01-02",
        timestamp_epoch=1767312000.0 + i,
    )


def gone(doc: Document, at: float = 1767400000.0) -> Tombstone:
    return Tombstone(doc.doc_id, "deleted upstream", at)


# --- the documents file --------------------------------------------------------------------


def test_one_entry_per_id_in_a_run_the_later_observation_winning():
    old, new = page(0), page(0, "revised")
    restored = replace(page(1), timestamp_epoch=1767500000.0)
    docs, deaths = settle(
        [old, new, page(1), restored, page(2)],
        [
            gone(page(0), 1767400000.0),  # after the page's last change: deleted
            gone(page(1), 1767400000.0),  # before the restore's change: the page stays
            gone(page(2), page(2).timestamp_epoch),  # a tie goes to the deletion
            gone(page(3), 1767300000.0),
            gone(page(3), 1767400000.0),  # the latest tombstone of an id is kept
        ],
    )
    assert docs == [restored]
    assert deaths == [gone(page(0)), gone(page(2), page(2).timestamp_epoch), gone(page(3))]


def test_documents_and_tombstones_share_one_file_and_old_files_still_read(tmp_path):
    files = DocumentFiles(tmp_path)
    path = files.write("wiki", "acme", "run1", [page(0), page(1)], [gone(page(1)), gone(page(2))])
    assert DocumentFiles.read_entries(path) == [page(0), gone(page(1)), gone(page(2))]
    assert DocumentFiles.read(path) == [page(0)]
    assert DocumentFiles.read_tombstones(path) == [gone(page(1)), gone(page(2))]
    only_deaths = files.write("wiki", "acme", "run2", [], [gone(page(3))])
    assert DocumentFiles.read_entries(only_deaths) == [gone(page(3))]

    before_tombstones = tmp_path / "old.parquet"  # a file queued before this change
    pd.DataFrame([page(0).to_row()], columns=DOCUMENT_COLUMNS).to_parquet(before_tombstones)
    assert DocumentFiles.read_entries(before_tombstones) == [page(0)]


def test_a_source_result_carries_its_tombstones_not_as_metadata():
    @dataclass(kw_only=True)
    class Result(SyncResult):
        pages_listed: int = 0

    result = Result(documents=[page(0)], high_water_mark=1.0, mode="incremental",
                    tombstones=[gone(page(1))], pages_listed=2)
    outcome = SyncOutcome.from_result(result, CallStats())
    assert outcome.tombstones == [gone(page(1))] and outcome.documents == [page(0)]
    assert outcome.metadata == {"mode": "incremental", "pages_listed": 2}
    assert SyncOutcome([], 0.0, CallStats()).tombstones == []


# --- the updater, on both stores -----------------------------------------------------------


@pytest.fixture(scope="module")
def pinecone_sandbox():
    with Sandbox(company=Company.generate(seed=11, messages=100, days=1),
                 pinecone_dimension=DIM) as sb:
        yield sb


@pytest.fixture(params=["lance", "pinecone"])
def store(request, tmp_path):
    if request.param == "lance":
        return LanceStore(tmp_path / "vectors")
    sandbox = request.getfixturevalue("pinecone_sandbox")
    sandbox.pinecone.reset(DIM)
    sandbox.knobs.reset()
    sandbox.knobs.latency_ms = 0
    return PineconeStore(SANDBOX_PINECONE_KEY, sandbox.pinecone_host, namespace="tombstones")


@pytest.fixture
def deletes(store, monkeypatch) -> list[list[str]]:
    """The ids of each delete the store was asked for; on Pinecone, the request bodies are
    checked to name ids and never a metadata filter."""
    asked: list[list[str]] = []
    real = store.delete
    monkeypatch.setattr(store, "delete", lambda ids: asked.append(sorted(ids)) or real(ids))
    if isinstance(store, PineconeStore):
        wire = store._index.delete

        def by_ids_only(**kwargs):
            assert kwargs.get("ids") and "filter" not in kwargs and not kwargs.get("delete_all")
            return wire(**kwargs)

        monkeypatch.setattr(store._index, "delete", by_ids_only)
    return asked


def ledger_of(tmp_path, store) -> ChunkLedger:
    return ChunkLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}", store.name)


def run(tmp_path, store, entries, batch_documents: int = 500):
    """One vector_index pass over `entries`: a fresh updater, as each run builds one."""
    ledger = ledger_of(tmp_path, store)
    updater = IndexUpdater(
        HashingEmbedder(dimension=DIM), store, ledger, SPLITTER, batch_documents=batch_documents
    )
    return updater.apply(entries), ledger


def found(store, doc: Document) -> bool:
    hits = search(doc.text, HashingEmbedder(dimension=DIM), store, top_k=5)
    return doc.doc_id in {hit.doc_id for hit in hits}


def ids_of(store, doc: Document) -> set[str]:
    return {i for i in store.ids() if i.startswith(doc.doc_id + "#")}


def test_a_tombstone_deletes_every_vector_of_its_document_by_id(tmp_path, store, deletes):
    docs = [page(i) for i in range(3)]
    run(tmp_path, store, docs)
    everything, doomed = store.ids(), ids_of(store, docs[0])
    assert len(doomed) >= 3 and found(store, docs[0])

    stats, ledger = run(tmp_path, store, [gone(docs[0])])
    assert (stats.tombstones, stats.documents_deleted, stats.vectors_deleted) == (1, 1, len(doomed))
    assert stats.chunks_embedded == 0 and stats.delete_requests == 1
    assert deletes == [sorted(doomed)]  # the ids the ledger knew, nothing else
    assert store.ids() == ledger.all_ids() == everything - doomed
    assert not found(store, docs[0]) and found(store, docs[1])


def test_an_unknown_or_already_applied_tombstone_is_a_no_op(tmp_path, store, deletes):
    docs = [page(i) for i in range(2)]
    run(tmp_path, store, docs)
    run(tmp_path, store, [gone(docs[0])])
    remaining, deletes_so_far = store.ids(), len(deletes)

    never_indexed = Tombstone(Document.make_id("wiki", "acme", "never"), "deleted upstream", 1.0)
    for entries in ([never_indexed], [gone(docs[0])]):
        stats, ledger = run(tmp_path, store, entries)
        assert stats.tombstones == 1
        assert (stats.documents_deleted, stats.vectors_deleted, stats.delete_requests) == (0, 0, 0)
        assert store.ids() == ledger.all_ids() == remaining
    assert len(deletes) == deletes_so_far


def test_a_document_that_comes_back_is_embedded_and_searchable_again(tmp_path, store):
    docs = [page(i) for i in range(2)]
    run(tmp_path, store, docs)
    everything, chunks = store.ids(), len(ids_of(store, docs[0]))
    run(tmp_path, store, [gone(docs[0])])
    assert not found(store, docs[0])

    stats, ledger = run(tmp_path, store, [docs[0]])
    assert stats.chunks_embedded == chunks and stats.chunks_skipped_unchanged == 0
    assert store.ids() == ledger.all_ids() == everything
    assert found(store, docs[0])


@pytest.mark.parametrize("batch_documents", [500, 1], ids=["one batch", "one entry a batch"])
def test_file_order_decides_between_a_document_and_its_tombstone(
    tmp_path, store, batch_documents
):
    docs = [page(i) for i in range(3)]
    run(tmp_path, store, docs)
    revised = [page(0, "revised"), page(1, "revised")]

    stats, ledger = run(
        tmp_path,
        store,
        [revised[0], gone(docs[0]), gone(docs[1]), revised[1]],
        batch_documents,
    )
    assert ids_of(store, docs[0]) == set() and not found(store, revised[0])
    assert found(store, revised[1])
    if batch_documents > 1:  # in one batch, the entries before an id's last one cost nothing
        assert (stats.documents, stats.tombstones, stats.documents_deleted) == (1, 1, 1)
    stored = store.fetch_metadata(sorted(ids_of(store, docs[1])))
    chunks = chunk_document(revised[1], SPLITTER, HashingEmbedder(dimension=DIM).signature)
    assert sorted(m["text"] for m in stored.values()) == sorted(c.text for c in chunks)
    assert store.ids() == ledger.all_ids()


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no `except Exception` catches it."""


def test_killed_between_store_delete_and_ledger_forget_a_rerun_converges(
    tmp_path, store, monkeypatch
):
    docs = [page(i) for i in range(2)]
    run(tmp_path, store, docs)
    everything, doomed = store.ids(), ids_of(store, docs[0])

    def killed(self, ids):
        raise Killed()

    forget = ChunkLedger.forget
    monkeypatch.setattr(ChunkLedger, "forget", killed)
    with pytest.raises(Killed):
        run(tmp_path, store, [gone(docs[0])])
    monkeypatch.setattr(ChunkLedger, "forget", forget)
    ledger = ledger_of(tmp_path, store)
    assert store.ids() == everything - doomed, "the store deletes first"
    assert ledger.all_ids() == everything, "the ledger still knows the ids"

    stats, ledger = run(tmp_path, store, [gone(docs[0])])  # the replayed file
    assert (stats.documents_deleted, stats.vectors_deleted) == (1, len(doomed))
    assert store.ids() == ledger.all_ids() == everything - doomed
    again, _ = run(tmp_path, store, [gone(docs[0])])
    assert (again.documents_deleted, again.delete_requests) == (0, 0)
