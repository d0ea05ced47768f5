"""Apply documents and tombstones to the vector store, embedding only what changed.

Order of work makes a killed run safe: embed -> upsert -> record in the ledger, one write unit
(at most `write_unit` chunks, recorded per store request) at a time, and delete from the store
-> forget in the ledger. Whatever was upserted but not yet recorded is simply embedded and
upserted again next time (same ids, so no duplicates); nothing recorded is missing from the
store. Because the next unit is embedded only once the last one is recorded, a kill wastes at
most one unit of embedding inputs, not a whole batch of documents.

A tombstone deletes every id the ledger knows for its document, by id (no metadata-filter
delete, which Pinecone's serverless indexes refuse), then forgets them. Killed in between, the
ledger still knows the ids and the replayed tombstone deletes them again (a no-op in the
store) before forgetting; a tombstone for a document the ledger does not know does nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields
from typing import Callable, Iterable, Sequence

from sync_pipelines.documents import Document, Entry, Tombstone
from sync_pipelines.index.chunking import Chunk, TextSplitter, chunk_document
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.stores.base import VectorRecord, VectorStore, batched

# Chunks embedded, upserted and recorded together: what a kill can cost at most. One embedding
# request and (within Pinecone's 2 MB) one upsert request each; LanceDB merges 100 rows in ~12 ms.
WRITE_UNIT = 100


@dataclass
class IndexStats:
    documents: int = 0
    chunks_seen: int = 0
    chunks_embedded: int = 0
    chunks_skipped_unchanged: int = 0
    chunks_deleted: int = 0
    tombstones: int = 0
    documents_deleted: int = 0
    vectors_deleted: int = 0
    upsert_requests: int = 0
    delete_requests: int = 0
    embed_seconds: float = 0.0
    upsert_seconds: float = 0.0

    def as_metadata(self) -> dict[str, float | int]:
        return {f.name: round(getattr(self, f.name), 3) for f in fields(self)}


class IndexUpdater:
    """Turns documents and tombstones into chunk upserts and deletes against one store and
    its ledger."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        ledger: ChunkLedger,
        splitter: TextSplitter,
        batch_documents: int = 500,
        progress: Callable[[IndexStats], None] | None = None,
        write_unit: int = WRITE_UNIT,
    ):
        if write_unit < 1:
            raise ValueError(f"write_unit must be at least 1, got {write_unit}")
        self.embedder = embedder
        self.store = store
        self.ledger = ledger
        self.splitter = splitter
        self.batch_documents = batch_documents
        self.progress = progress
        self.write_unit = write_unit
        self.stats = IndexStats()
        self._lock = threading.Lock()  # a store may report requests from several threads

    def apply(self, entries: Iterable[Entry]) -> IndexStats:
        """Apply documents and tombstones in order: of several entries for one doc_id, the
        last one is the document's state."""
        self.store.ensure_dimension(self.embedder.dimension)
        batch: list[Entry] = []
        for entry in entries:
            batch.append(entry)
            if len(batch) >= self.batch_documents:
                self._apply_batch(batch)
                batch = []
        if batch:
            self._apply_batch(batch)
        return self.stats

    def _apply_batch(self, entries: Sequence[Entry]) -> None:
        latest = latest_versions(entries)
        docs = [e for e in latest if isinstance(e, Document)]
        self._delete_documents([e for e in latest if isinstance(e, Tombstone)])
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
        for unit in batched(changed, self.write_unit):
            self._write(unit)
        if vanished:
            self.stats.delete_requests += self.store.delete(vanished)
            self.ledger.forget(vanished)
            self.stats.chunks_deleted += len(vanished)
        if self.progress is not None:
            self.progress(self.stats)

    def _delete_documents(self, tombstones: Sequence[Tombstone]) -> None:
        """Every vector of the tombstoned documents out of the store, then out of the ledger."""
        self.stats.tombstones += len(tombstones)
        known = self.ledger.ids_by_doc([t.doc_id for t in tombstones])
        ids = sorted({vid for doc_ids in known.values() for vid in doc_ids})
        if not ids:
            return
        self.stats.delete_requests += self.store.delete(ids)
        self.ledger.forget(ids)
        self.stats.documents_deleted += len(known)
        self.stats.vectors_deleted += len(ids)

    def _write(self, unit: Sequence[Chunk]) -> None:
        """Embed, upsert and record one unit; each store request is recorded once accepted."""
        by_id = {c.vector_id: c for c in unit}

        def record(accepted: Sequence[VectorRecord]) -> None:
            self.ledger.record([by_id[r.id] for r in accepted])
            with self._lock:
                self.stats.chunks_embedded += len(accepted)

        started = time.monotonic()
        vectors = self.embedder.embed([c.text for c in unit])
        self.stats.embed_seconds += time.monotonic() - started
        started = time.monotonic()
        records = [VectorRecord(c.vector_id, v, c.metadata) for c, v in zip(unit, vectors)]
        self.stats.upsert_requests += self.store.upsert(records, on_request=record)
        self.stats.upsert_seconds += time.monotonic() - started


def latest_versions(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per doc_id, the last one seen winning (files are read oldest first): a
    document after a tombstone brings it back, a tombstone after a document deletes it."""
    latest: dict[str, Entry] = {}
    for entry in entries:
        latest.pop(entry.doc_id, None)
        latest[entry.doc_id] = entry
    return list(latest.values())
