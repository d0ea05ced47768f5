"""Apply documents, tombstones and listings to the vector store, embedding only what changed.

Order of work makes a killed run safe: embed -> upsert -> record in the ledger per write unit
(at most `write_unit` chunks, recorded per store request as soon as the store accepted it),
and delete from the store -> forget in the ledger. Whatever was upserted but not yet recorded
is simply embedded and upserted again next time (same ids, so no duplicates); nothing
recorded is missing from the store. Write units run through a pipeline (pipeline.py):
chunking and triage of the next documents, embedding requests and upserts overlap, with at
most `units_in_flight` units between their embedding and their record, so a kill wastes at
most that many units of embedding inputs (`max_wasted_chunks`), not a whole batch.

A tombstone deletes every id the ledger knows for its document, by id (no metadata-filter
delete, which Pinecone's serverless indexes refuse), then forgets them. Killed in between, the
ledger still knows the ids and the replayed tombstone deletes them again (a no-op in the
store) before forgetting; a tombstone for a document the ledger does not know does nothing.
Between two listings each doc_id appears once (its latest version), so the writes in flight
and the deletes of a batch never touch the same document.

A chunk whose text is unchanged but whose metadata changed (an access list narrowed upstream,
a moved URL) has its stored metadata replaced in place: no embedding. A listing (documents.
Listing) deletes, like tombstones, the documents of its scope the ledger places in its range
that it does not list; it is applied where it stands in the stream, once every write before
it is recorded (the pipeline is drained). One that would delete most of what the index holds
there (at least ABSENT_GUARD_MIN documents and over `max_absent_share` of them, by default
half) is refused and counted: an API that suddenly answers nothing (a lost permission, a
filter gone wrong) must not empty the index; a real mass deletion is a tombstone signal, or
an operator's decision (raise the share for one run, see the README).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields

from sync_pipelines.documents import Document, Entry, Listing, Tombstone
from sync_pipelines.index.chunking import Chunk, TextSplitter, chunk_document, legacy_content_hash
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.pending import latest_entries
from sync_pipelines.index.pipeline import PipelineSettings, WritePipeline, parallel_writes
from sync_pipelines.index.stores.base import VectorStore, batched

# Chunks embedded, upserted and recorded together: one embedding request and (within
# Pinecone's 2 MB) one upsert request each; LanceDB merges 100 rows in ~12 ms.
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
    embed_seconds: float = 0.0  # summed over the requests in flight, so it can exceed the run
    upsert_seconds: float = 0.0  # likewise
    embed_in_flight_max: int = 0
    embed_in_flight_mean: float = 0.0  # time-weighted, while any request was in flight
    embed_wait_seconds: float = 0.0  # held by the rate limiter, summed over the workers
    embed_holds: int = 0  # 429s and exhausted x-ratelimit budgets that held every worker

    def as_metadata(self) -> dict[str, float | int]:
        return {f.name: round(getattr(self, f.name), 3) for f in fields(self)}


class IndexUpdater:
    """Turns documents, tombstones and listings into chunk upserts, metadata updates and
    deletes against one store and its ledger. `partition_time` places a document in time
    as its source partitions it (what listings judge); `warn` hears refused listings;
    `pipeline` sets how much runs at once (default: PipelineSettings.for_run)."""

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
        pipeline: PipelineSettings | None = None,
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
        self.settings = pipeline or PipelineSettings.for_run(embedder, store)
        self.stats = IndexStats()
        self._lock = threading.Lock()  # stats are fed from the pipeline's threads
        # A store on local disk wants one writer at a time; a service takes them in parallel.
        self._store_writes = nullcontext() if parallel_writes(store) else threading.Lock()
        self._pipeline: WritePipeline | None = None

    @property
    def max_wasted_chunks(self) -> int:
        """What a kill can cost at most: every unit in flight embedded again next run."""
        return self.settings.units_in_flight * self.write_unit

    def apply(self, entries: Iterable[Entry]) -> IndexStats:
        """Apply entries in order: between two listings, of several entries for one doc_id
        the last one is the document's state; a listing judges what came before it. Holds
        a segment's entries to find those: for files, `apply_files` streams."""
        return self.apply_latest(_latest_per_segment(entries))

    def apply_files(self, paths: Sequence[str | os.PathLike]) -> IndexStats:
        """Apply document files in order, streamed: memory does not grow with their rows."""
        return self.apply_latest(latest_entries(paths))

    def apply_latest(self, entries: Iterable[Entry]) -> IndexStats:
        """Apply entries that already hold one entry per doc_id between two listings."""
        self.store.ensure_dimension(self.embedder.dimension)
        self._pipeline = WritePipeline(
            self.embedder,
            self.store,
            self.ledger,
            self.settings,
            store_lock=self._store_writes,
            on_recorded=self._recorded,
            on_embedded=self._embedded,
            on_upserted=self._upserted,
        )
        try:
            batch: list[Document | Tombstone] = []
            for entry in entries:
                if isinstance(entry, Listing):
                    self._apply_batch(batch)
                    batch = []
                    self._pipeline.drain()
                    self._apply_listing(entry)
                    continue
                batch.append(entry)
                if len(batch) >= self.batch_documents:
                    self._apply_batch(batch)
                    batch = []
            self._apply_batch(batch)
            self._pipeline.drain()
        finally:
            self._pipeline.close()
            limiter = self._pipeline.limiter.stats
            self.stats.embed_in_flight_max = max(
                self.stats.embed_in_flight_max, limiter.max_in_flight
            )
            self.stats.embed_in_flight_mean = limiter.mean_in_flight
            self.stats.embed_wait_seconds += limiter.wait_s
            self.stats.embed_holds += limiter.holds
        return self.stats

    def _apply_batch(self, latest: Sequence[Document | Tombstone]) -> None:
        if not latest:
            return
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
        vanished = sorted({vid for ids in previous.values() for vid in ids} - current_ids)
        with self._lock:
            self.stats.documents += len(docs)
            self.stats.chunks_seen += len(chunks)
            self.stats.chunks_skipped_unchanged += len(chunks) - len(embed) - len(update)
        for unit in batched(embed, self.write_unit):
            self._pipeline.submit(unit)
        for unit in batched(update, self.write_unit):
            self._update_metadata(unit)
        if refresh:
            self.ledger.record(refresh)
        if vanished:
            with self._store_writes:
                requests = self.store.delete(vanished)
            self.ledger.forget(vanished)
            with self._lock:
                self.stats.delete_requests += requests
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
        with self._store_writes:
            requests = self.store.update_metadata(items, on_request=record)
        with self._lock:
            self.stats.metadata_requests += requests
        missing = [c for c in unit if c.vector_id not in done]
        if missing:
            self._pipeline.submit(missing)

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
        with self._store_writes:
            requests = self.store.delete(ids)
        self.ledger.forget(ids)
        with self._lock:
            self.stats.delete_requests += requests
            self.stats.documents_deleted += len(known)
            self.stats.vectors_deleted += len(ids)
        return len(known)

    def _recorded(self, chunks: int) -> None:
        with self._lock:
            self.stats.chunks_embedded += chunks

    def _embedded(self, seconds: float) -> None:
        with self._lock:
            self.stats.embed_seconds += seconds

    def _upserted(self, requests: int, seconds: float) -> None:
        with self._lock:
            self.stats.upsert_requests += requests
            self.stats.upsert_seconds += seconds


def _latest_per_segment(entries: Iterable[Entry]) -> Iterator[Entry]:
    """Each segment's latest versions (see `latest_versions`), then the listing closing it."""
    segment: list[Document | Tombstone] = []
    for entry in entries:
        if isinstance(entry, Listing):
            yield from latest_versions(segment)
            segment = []
            yield entry
        else:
            segment.append(entry)
    yield from latest_versions(segment)


def latest_versions(entries: Iterable[Document | Tombstone]) -> list[Document | Tombstone]:
    """One entry per doc_id, the last one seen winning (files are read oldest first): a
    document after a tombstone brings it back, a tombstone after a document deletes it."""
    latest: dict[str, Entry] = {}
    for entry in entries:
        latest.pop(entry.doc_id, None)
        latest[entry.doc_id] = entry
    return list(latest.values())
