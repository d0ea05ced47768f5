"""The `vector_index` asset: embeds and upserts whatever the sources landed since its last run.

The event log is the queue: each source materialization names the document files it wrote
(documents and tombstones, applied in event order), and vector_index keeps a cursor over those
events per (store, embedder) beside the chunk ledger (progress.py; see event_cursor.py for why
it is more than a storage id), shown in its materialization metadata too. A failed or killed
run records nothing, so the next run starts from the same events; the chunk ledger makes that
replay cost only what was not yet upserted or deleted. A store with no progress for the
embedder is rebuilt from every retained document file.
"""


import time
from collections.abc import Callable, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    asset,
)

from sync_pipelines.catalog import asset_owners
from sync_pipelines.documents import Document
from sync_pipelines.errors import fail_fast
from sync_pipelines.index.event_cursor import EventCursor, SourceEvent, select_pending
from sync_pipelines.index.progress import IndexProgress, Recorded, resume
from sync_pipelines.index.updater import IndexUpdater, document_time
from sync_pipelines.metrics import peak_rss_mb
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import FILES_KEY, SOURCE_RETRY_POLICY

CURSOR_KEY = "source_event_cursor"
VECTOR_INDEX = "vector_index"

# Run after any source partition lands, even while other days' partitions are missing;
# `eager()` would wait on them. At most one run in flight.
VECTOR_INDEX_CONDITION = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.in_progress()
)


def last_recorded(context: AssetExecutionContext) -> Recorded | None:
    """The cursor, store and embedder of vector_index's latest materialization: what a
    deployment from before per-store progress adopts when both still match."""
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key), limit=1
    )
    if not result.records:
        return None
    metadata = result.records[0].asset_materialization.metadata
    cursor, store, embedder = (
        metadata[k].value if k in metadata else None for k in (CURSOR_KEY, "store", "embedder")
    )
    return Recorded(EventCursor.from_json(cursor), store, embedder)


def source_events(
    context: AssetExecutionContext, source_keys: Sequence[AssetKey], cursor: EventCursor
) -> list[SourceEvent]:
    """Source materializations from the cursor's grace window on, with their document files."""
    events: list[SourceEvent] = []
    for key in source_keys:
        page_cursor = None
        while True:
            page = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, after_timestamp=cursor.read_after_timestamp),
                limit=1000,
                cursor=page_cursor,
                ascending=True,
            )
            for record in page.records:
                entry = record.asset_materialization.metadata.get(FILES_KEY)
                files = tuple(entry.value) if entry else ()
                events.append(SourceEvent(record.storage_id, record.timestamp, files))
            if not page.has_more:
                break
            page_cursor = page.cursor
    return events


def partition_times() -> Callable[[Document], float]:
    """The time each document's source partitions it by (what listings judge); a source no
    longer declared, and an upstream that is no source (call_insights, whose documents carry
    their call's time), fall back to the document's timestamp."""
    by_source = {d.name: d.partition_time for d in registry.declarations()}
    return lambda doc: by_source.get(doc.source, document_time)(doc)


def build_vector_index(source_assets: Sequence[AssetsDefinition]) -> AssetsDefinition:
    """vector_index over `source_assets`: every asset whose materializations name document
    files under FILES_KEY (the sources, their reconciliations, call_insights)."""
    source_keys = [a.key for a in source_assets]

    @asset(
        name=VECTOR_INDEX,
        group_name="index",
        deps=source_keys,
        automation_condition=VECTOR_INDEX_CONDITION,
        required_resource_keys={"embedder", "vector_store"},
        kinds={"python", "vectors"},
        pool="vector_index",
        # What still fails after the clients' retries is retried like the sources' runs; auth
        # errors and other permanent ones fail at once (fail_fast).
        retry_policy=SOURCE_RETRY_POLICY,
        owners=asset_owners(),
        description=(
            "Chunks, embeds and upserts the documents every source landed since the last run; "
            "only new or changed chunks are embedded, chunks whose metadata alone changed are "
            "updated in place, vanished chunks and every chunk of a document deleted upstream "
            "(a tombstone, or absent from its source's listing) are deleted."
        ),
    )
    @fail_fast
    def vector_index(context: AssetExecutionContext) -> MaterializeResult:
        started = time.monotonic()
        embedder = context.resources.embedder.build()
        store = context.resources.vector_store.build()
        ledger = context.resources.vector_store.ledger(store)
        progress = IndexProgress.beside(ledger)
        start = resume(
            progress, store, ledger, embedder, last_recorded(context), context.log.warning
        )
        previous = start.cursor
        files, cursor = select_pending(source_events(context, source_keys, previous), previous)
        if start.rebuild:
            context.log.info(f"{start.reason}: rebuilding from {len(files)} document files")
        else:
            context.log.info(
                f"{len(files)} document files landed since event {previous.storage_id} "
                f"({start.reason})"
            )
        updater = IndexUpdater(
            embedder,
            store,
            ledger,
            context.resources.embedder.splitter(),
            batch_documents=context.resources.vector_store.batch_documents,
            progress=lambda s: context.log.info(
                f"{s.documents} documents: {s.chunks_embedded} chunks embedded, "
                f"{s.chunks_skipped_unchanged} unchanged, {s.chunks_deleted} deleted; "
                f"{s.tombstones} tombstones, {s.listings} listings: {s.documents_deleted} "
                f"documents ({s.vectors_deleted} vectors) deleted"
            ),
            partition_time=partition_times(),
            warn=context.log.warning,
            max_absent_share=context.resources.vector_store.max_absent_share,
        )
        stats = updater.apply_files(files)  # streamed: memory flat however many documents
        if (
            stats.chunks_embedded
            or stats.chunks_metadata_updated
            or stats.chunks_deleted
            or stats.vectors_deleted
        ):
            store.compact()  # merge the small fragments each batch leaves (LanceDB)
        embed_stats = embedder.stats
        progress.record(store.name, embedder.signature, cursor)  # only once all is applied
        return MaterializeResult(
            metadata={
                **stats.as_metadata(),
                "document_files": len(files),
                "tokens_embedded": int(getattr(embed_stats, "tokens", 0)),
                "embedding_requests": int(getattr(embed_stats, "requests", 0)),
                "token_counter": str(getattr(embed_stats, "token_counter", "")),
                "embedder": embedder.signature,
                "store": store.name,
                "vectors_in_store": store.count(),
                "chunks_in_ledger": ledger.count(),
                CURSOR_KEY: cursor.to_json(),
                "last_source_event": cursor.storage_id,
                "retries": int(getattr(store, "retries", 0)),
                "duration_s": round(time.monotonic() - started, 3),
                "peak_memory_mb": peak_rss_mb(),
            }
        )

    return vector_index

