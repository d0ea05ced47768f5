"""Access changes take effect without paying for embeddings: a document whose text is
unchanged but whose access list (or URL) changed has its stored metadata replaced in place, on
LanceDB and on the Pinecone emulator, with 0 embedding calls, and search as a reader who lost
access stops returning it. A ledger written before metadata hashes existed is upgraded in
place and costs no embedding either."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from sync_pipelines.documents import Document
from sync_pipelines.index.chunking import chunk_document, legacy_content_hash
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.search import search
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.updater import IndexUpdater
from sync_pipelines_tests.test_tombstones import DIM, SPLITTER, page
from sync_pipelines_tests.test_tombstones_end_to_end import (  # noqa: F401 - the fixture
    Pipeline,
    gizmo,
    gizmos,
    use_store,
)

pytestmark = pytest.mark.integration

ANA, BO = "ana@acme.test", "bo@acme.test"


def readers_find(pipeline: Pipeline, doc: Document, reader: str) -> bool:
    embedder = pipeline.harness.embedder.build()
    store = pipeline.harness.vector_store.build()
    hits = search(doc.text, embedder, store, top_k=5, as_user=reader)
    return doc.doc_id in {hit.doc_id for hit in hits}


@pytest.mark.parametrize("kind", ["lance", "pinecone"])
def test_an_access_list_narrowed_upstream_takes_effect_in_search_with_no_embedding(
    harness, gizmos, kind  # noqa: F811 - the fixture imported above
):
    use_store(harness, kind)
    pipeline = Pipeline(harness, gizmos)
    shared = replace(gizmo(0), access=(ANA, BO))
    other = replace(gizmo(1), access=(ANA, BO))
    pipeline.sync([shared, other])
    first = pipeline.indexed()
    assert first["chunks_embedded"] >= 4
    assert readers_find(pipeline, shared, BO) and readers_find(pipeline, shared, ANA)

    narrowed = replace(shared, access=(ANA,), url="https://gizmos.test/moved/0")
    pipeline.sync([narrowed, other])
    meta = pipeline.indexed()
    chunks = len(chunk_document(narrowed, pipeline.harness.embedder.splitter(), "x"))
    assert meta["chunks_embedded"] == 0 and meta["embedding_requests"] == 0
    assert meta["tokens_embedded"] == 0
    assert meta["chunks_metadata_updated"] == chunks >= 2
    assert meta["metadata_requests"] >= 1
    assert not readers_find(pipeline, shared, BO), "bo lost access upstream"
    assert readers_find(pipeline, shared, ANA) and readers_find(pipeline, other, BO)
    store = harness.vector_store.build()
    stored = store.fetch_metadata([f"{shared.doc_id}#0"])[f"{shared.doc_id}#0"]
    assert stored["url"] == "https://gizmos.test/moved/0" and stored["access"] == [ANA]

    # Nothing changed since: no embedding, no update.
    pipeline.sync([narrowed, other])
    again = pipeline.indexed()
    assert (again["chunks_embedded"], again["chunks_metadata_updated"]) == (0, 0)

    # New text still re-embeds (only the chunks whose text changed).
    edited = replace(narrowed, text=narrowed.text + " A closing line about the cranes.")
    pipeline.sync([edited, other])
    assert 1 <= pipeline.indexed()["chunks_embedded"] < chunks + 1


def test_a_ledger_from_before_metadata_hashes_is_upgraded_without_embedding(tmp_path):
    """Rows of the old schema (one hash of text and metadata, no metadata hash, no time):
    opening the ledger adds the columns; an unchanged document is recorded again with
    both hashes and its time and nothing is embedded; a changed one is embedded."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    embedder = HashingEmbedder(dimension=DIM)
    store = LanceStore(tmp_path / "vectors")
    docs = [page(0), page(1)]
    IndexUpdater(embedder, store, ChunkLedger(url, store.name), SPLITTER).apply(docs)
    chunks = [c for d in docs for c in chunk_document(d, SPLITTER, embedder.signature)]
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # back to what an older version wrote
        for chunk in chunks:
            conn.execute(
                sa.text("UPDATE chunk_ledger SET content_hash = :h WHERE vector_id = :v"),
                {"h": legacy_content_hash(embedder.signature, chunk), "v": chunk.vector_id},
            )
        conn.execute(sa.text("ALTER TABLE chunk_ledger DROP COLUMN metadata_hash"))
        conn.execute(sa.text("DROP INDEX ix_chunk_ledger_store_time"))
        conn.execute(sa.text("ALTER TABLE chunk_ledger DROP COLUMN doc_time"))
    engine.dispose()

    ledger = ChunkLedger(url, store.name)
    rows = ledger.rows([c.vector_id for c in chunks])
    assert {(r.metadata_hash, r.doc_time) for r in rows.values()} == {(None, None)}

    revised = [docs[0], page(1, "revised")]
    stats = IndexUpdater(embedder, store, ledger, SPLITTER).apply(revised)
    # page 1's every sentence changed; page 0 still matches its legacy hash.
    rewritten = chunk_document(revised[1], SPLITTER, embedder.signature)
    assert stats.chunks_metadata_updated == 0
    assert stats.chunks_embedded == len(rewritten) < len(chunks)
    upgraded = ledger.rows([c.vector_id for c in chunks])
    assert all(r.metadata_hash and r.doc_time is not None for r in upgraded.values())
    assert IndexUpdater(embedder, store, ledger, SPLITTER).apply(revised).chunks_embedded == 0
