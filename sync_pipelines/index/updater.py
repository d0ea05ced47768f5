"""Apply a set of documents to the vector store, embedding only what changed.

Order of work per batch makes a killed run safe: embed -> upsert -> record in the ledger, and
delete from the store -> forget in the ledger. Whatever was upserted but not yet recorded is
simply embedded and upserted again next time (same ids, so no duplicates); nothing recorded
is missing from the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Callable, Iterable, Sequence

from sync_pipelines.documents import Document
from sync_pipelines.index.chunking import Chunk, TextSplitter, chunk_document
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.stores.base import VectorRecord, VectorStore


@dataclass
class IndexStats:
    documents: int = 0
    chunks_seen: int = 0
    chunks_embedded: int = 0
    chunks_skipped_unchanged: int = 0
    chunks_deleted: int = 0
    upsert_requests: int = 0
    delete_requests: int = 0
    embed_seconds: float = 0.0
    upsert_seconds: float = 0.0

    def as_metadata(self) -> dict[str, float | int]:
        return {f.name: round(getattr(self, f.name), 3) for f in fields(self)}


class IndexUpdater:
    """Turns documents into chunk upserts and deletes against one store and its ledger."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        ledger: ChunkLedger,
        splitter: TextSplitter,
        batch_documents: int = 500,
        progress: Callable[[IndexStats], None] | None = None,
    ):
        self.embedder = embedder
        self.store = store
        self.ledger = ledger
        self.splitter = splitter
        self.batch_documents = batch_documents
        self.progress = progress
        self.stats = IndexStats()

    def apply(self, documents: Iterable[Document]) -> IndexStats:
        self.store.ensure_dimension(self.embedder.dimension)
        batch: list[Document] = []
        for doc in documents:
            batch.append(doc)
            if len(batch) >= self.batch_documents:
                self._apply_batch(batch)
                batch = []
        if batch:
            self._apply_batch(batch)
        return self.stats

    def _apply_batch(self, docs: Sequence[Document]) -> None:
        chunks: list[Chunk] = []
        for doc in docs:
            chunks.extend(chunk_document(doc, self.splitter, self.embedder.signature))
        current_ids = {c.vector_id for c in chunks}
        known = self.ledger.hashes([c.vector_id for c in chunks])
        changed = [c for c in chunks if known.get(c.vector_id) != c.content_hash]
        previous = self.ledger.ids_by_doc([d.doc_id for d in docs])
        vanished = sorted(
            {vid for ids in previous.values() for vid in ids} - current_ids
        )
        self.stats.documents += len(docs)
        self.stats.chunks_seen += len(chunks)
        self.stats.chunks_skipped_unchanged += len(chunks) - len(changed)
        if changed:
            started = time.monotonic()
            vectors = self.embedder.embed([c.text for c in changed])
            self.stats.embed_seconds += time.monotonic() - started
            started = time.monotonic()
            records = [VectorRecord(c.vector_id, v, c.metadata) for c, v in zip(changed, vectors)]
            self.stats.upsert_requests += self.store.upsert(records)
            self.stats.upsert_seconds += time.monotonic() - started
            self.ledger.record(changed)
            self.stats.chunks_embedded += len(changed)
        if vanished:
            self.stats.delete_requests += self.store.delete(vanished)
            self.ledger.forget(vanished)
            self.stats.chunks_deleted += len(vanished)
        if self.progress is not None:
            self.progress(self.stats)


def latest_versions(documents: Iterable[Document]) -> list[Document]:
    """One document per doc_id, the last one seen winning (files are read oldest first)."""
    latest: dict[str, Document] = {}
    for doc in documents:
        latest.pop(doc.doc_id, None)
        latest[doc.doc_id] = doc
    return list(latest.values())
