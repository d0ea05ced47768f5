"""Apply documents, tombstones and listings to the vector store, embedding only what changed.

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

A chunk whose text is unchanged but whose metadata changed (an access list narrowed upstream,
a moved URL) has its stored metadata replaced in place: no embedding. A listing (documents.
Listing) deletes, like tombstones, the documents of its scope the ledger places in its range
that it does not list; it is applied where it stands in the stream, after the documents
before it. One that would delete most of what the index holds there (at least
ABSENT_GUARD_MIN documents and over `max_absent_share` of them, by default half) is refused
and counted: an API that suddenly answers nothing (a lost permission, a filter gone wrong)
must not empty the index; a real mass deletion is a tombstone signal, or an operator's
decision (raise the share for one run, see the README).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, fields
from typing import Callable, Iterable, Sequence

from sync_pipelines.documents import Document, Entry, Listing, Tombstone
from sync_pipelines.index.chunking import Chunk, TextSplitter, chunk_document, legacy_content_hash
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.stores.base import VectorRecord, VectorStore, batched

# Chunks embedded, upserted and recorded together: what a kill can cost at most. One embedding
# request and (within Pinecone's 2 MB) one upsert request each; LanceDB merges 100 rows in ~12 ms.
WRITE_UNIT = 100
ABSENT_GUARD_MIN = 20

PartitionTime = Callable[[Document], float]


def document_time(doc: Document) -> float:
    return doc.timestamp_epoch


@dataclass
class IndexStats:
    documents: int = 0
    chunks_seen: int = 0
    chunks_embedded: int = 0
    chunks_skipped_unchanged: int = 0
    chunks_metadata_updated: int = 0  # text unchanged: stored metadata replaced, no embedding
    chunks_deleted: int = 0
    tombstones: int = 0
    listings: int = 0
    listings_refused: int = 0  # would have deleted most of their range (module docstring)
    documents_deleted: int = 0  # by tombstones and listings
    documents_absent: int = 0  # of those, by listings
    vectors_deleted: int = 0
    upsert_requests: int = 0
    metadata_requests: int = 0
    delete_requests: int = 0
    embed_seconds: float = 0.0
    upsert_seconds: float = 0.0

    def as_metadata(self) -> dict[str, float | int]:
        return {f.name: round(getattr(self, f.name), 3) for f in fields(self)}


class IndexUpdater:
    """Turns documents, tombstones and listings into chunk upserts, metadata updates and
    deletes against one store and its ledger. `partition_time` places a document in time
    as its source partitions it (what listings judge); `warn` hears refused listings."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        ledger: ChunkLedger,
        splitter: TextSplitter,
        batch_documents: int = 500,
        progress: Callable[[IndexStats], None] | None = None,
        write_unit: int = WRITE_UNIT,
        partition_time: PartitionTime = document_time,
        warn: Callable[[str], None] | None = None,
        max_absent_share: float = 0.5,
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
        self.partition_time = partition_time
        self.warn = warn
        self.max_absent_share = max_absent_share
        self.stats = IndexStats()
        self._lock = threading.Lock()  # a store may report requests from several threads

    def apply(self, entries: Iterable[Entry]) -> IndexStats:
        """Apply entries in order: between two listings, of several entries for one doc_id
        the last one is the document's state; a listing judges what came before it."""
        self.store.ensure_dimension(self.embedder.dimension)
        segment: list[Entry] = []
        for entry in entries:
            if isinstance(entry, Listing):
                self._apply_segment(segment)
                segment = []
                self._apply_listing(entry)
            else:
                segment.append(entry)
        self._apply_segment(segment)
        return self.stats

    def _apply_segment(self, entries: Sequence[Entry]) -> None:
        for batch in batched(latest_versions(entries), self.batch_documents):
            self._apply_batch(batch)

    def _apply_batch(self, latest: Sequence[Entry]) -> None:
        docs = [e for e in latest if isinstance(e, Document)]
        self._delete_documents([e for e in latest if isinstance(e, Tombstone)])
        chunks: list[Chunk] = []
        for doc in docs:
            chunks.extend(
                chunk_document(
                    doc, self.splitter, self.embedder.signature, self.partition_time(doc)
                )
            )
        current_ids = {c.vector_id for c in chunks}
        embed, update, refresh = self._triage(chunks)
        previous = self.ledger.ids_by_doc([d.doc_id for d in docs])
        vanished = sorted(
            {vid for ids in previous.values() for vid in ids} - current_ids
        )
        self.stats.documents += len(docs)
        self.stats.chunks_seen += len(chunks)
        self.stats.chunks_skipped_unchanged += len(chunks) - len(embed) - len(update)
        for unit in batched(embed, self.write_unit):
            self._write(unit)
        for unit in batched(update, self.write_unit):
            self._update_metadata(unit)
        if refresh:
            self.ledger.record(refresh)
        if vanished:
            self.stats.delete_requests += self.store.delete(vanished)
            self.ledger.forget(vanished)
            self.stats.chunks_deleted += len(vanished)
        if self.progress is not None:
            self.progress(self.stats)

    def _triage(self, chunks: Sequence[Chunk]) -> tuple[list[Chunk], list[Chunk], list[Chunk]]:
        """Chunks to embed (new or new text), to update in place (new metadata only) and to
        record again with no store call (a legacy row that still matches, a new time)."""
        known = self.ledger.rows([c.vector_id for c in chunks])
        embed, update, refresh = [], [], []
        for chunk in chunks:
            row = known.get(chunk.vector_id)
            if row is None:
                embed.append(chunk)
            elif row.metadata_hash is None:  # written before metadata hashes
                same = row.content_hash == legacy_content_hash(self.embedder.signature, chunk)
                (refresh if same else embed).append(chunk)
            elif row.content_hash != chunk.content_hash:
                embed.append(chunk)
            elif row.metadata_hash != chunk.metadata_hash:
                update.append(chunk)
            elif row.doc_time != chunk.doc_time:
                refresh.append(chunk)
        return embed, update, refresh

    def _update_metadata(self, unit: Sequence[Chunk]) -> None:
        """Replace the stored metadata of one unit; each accepted request is recorded. Ids the
        store turns out not to hold (lost outside this updater) are embedded again."""
        by_id = {c.vector_id: c for c in unit}
        done: set[str] = set()

        def record(ids: Sequence[str]) -> None:
            self.ledger.record([by_id[i] for i in ids])
            with self._lock:
                done.update(ids)
                self.stats.chunks_metadata_updated += len(ids)

        items = [(c.vector_id, c.metadata) for c in unit]
        self.stats.metadata_requests += self.store.update_metadata(items, on_request=record)
        missing = [c for c in unit if c.vector_id not in done]
        if missing:
            self._write(missing)

    def _delete_documents(self, tombstones: Sequence[Tombstone]) -> None:
        """Every vector of the tombstoned documents out of the store, then out of the ledger."""
        self.stats.tombstones += len(tombstones)
        self._delete(self.ledger.ids_by_doc([t.doc_id for t in tombstones]))

    def _apply_listing(self, listing: Listing) -> None:
        """Delete what the ledger holds in the listing's scope and range that it does not
        list, unless that is most of it (see the module docstring)."""
        self.stats.listings += 1
        held = self.ledger.ids_in_range(listing.scope, listing.start, listing.judged_until)
        absent = {doc: ids for doc, ids in held.items() if doc not in listing.doc_ids}
        if len(absent) >= ABSENT_GUARD_MIN and len(absent) > self.max_absent_share * len(held):
            self.stats.listings_refused += 1
            if self.warn is not None:
                self.warn(
                    f"listing of {listing.scope} over [{listing.start}, {listing.judged_until}) "
                    f"refused: it would delete {len(absent)} of the {len(held)} documents the "
                    "index holds there; nothing deleted (over vector_store.max_absent_share "
                    f"{self.max_absent_share}; raise it to let a real mass deletion through)"
                )
            return
        self.stats.documents_absent += self._delete(absent)

    def _delete(self, known: dict[str, set[str]]) -> int:
        """Delete these documents' vectors from the store, then forget them; answers how
        many documents had any."""
        ids = sorted({vid for doc_ids in known.values() for vid in doc_ids})
        if not ids:
            return 0
        self.stats.delete_requests += self.store.delete(ids)
        self.ledger.forget(ids)
        self.stats.documents_deleted += len(known)
        self.stats.vectors_deleted += len(ids)
        return len(known)

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


def latest_versions(entries: Iterable[Document | Tombstone]) -> list[Document | Tombstone]:
    """One entry per doc_id, the last one seen winning (files are read oldest first): a
    document after a tombstone brings it back, a tombstone after a document deletes it."""
    latest: dict[str, Entry] = {}
    for entry in entries:
        latest.pop(entry.doc_id, None)
        latest[entry.doc_id] = entry
    return list(latest.values())
