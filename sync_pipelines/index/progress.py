"""What each vector store holds: whose vectors, and how far through the source events.

Why beside the ledger and not only in vector_index's materialization metadata: that cursor
belongs to the asset, not to a store, so pointing vector_index at a new store (or embedding
with a new embedder) carried on from it and left the new store empty, or mixed two embedders'
vectors in one table. A store's progress lives in its ledger's database under the same store
name (index and namespace included). A store with no progress for the configured embedder is
rebuilt from the retained document files; one that holds another embedder's vectors is
emptied first, because one store must never serve two embedders' vectors (same-dimension ones
would answer every query silently wrong).

One row per store: the embedder its vectors come from and the event cursor after its last
successful run, NULL while a rebuild is under way, so a failed rebuild resumes from the start
without emptying the store again (the ledger skips what it already upserted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sync_pipelines import clock
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.event_cursor import EventCursor
from sync_pipelines.index.ledger import ChunkLedger, chunk_ledger
from sync_pipelines.index.stores.base import VectorStore

_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
EMPTYING = "(being emptied)"  # in place of an embedder: the store must be emptied first

_metadata = sa.MetaData()
index_progress = sa.Table(
    "index_progress",
    _metadata,
    sa.Column("store", sa.Text, primary_key=True),
    sa.Column("embedder", sa.Text, nullable=False),
    sa.Column("event_cursor", sa.Text, nullable=True),  # NULL: a rebuild is under way
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class StoreProgress:
    embedder: str  # signature of the embedder whose vectors the store holds
    cursor: EventCursor | None  # None: a rebuild started and has not finished yet


@dataclass(frozen=True)
class Recorded:
    """What vector_index's latest materialization says it wrote, and where (metadata)."""

    cursor: EventCursor
    store: str | None
    embedder: str | None


@dataclass(frozen=True)
class Start:
    """Where a vector_index run starts: `cursor`, and whether that is a rebuild (and why)."""

    cursor: EventCursor
    rebuild: bool
    reason: str


class IndexProgress:
    """The `index_progress` table, in the ledger's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine):
        backend = engine.url.get_backend_name()
        if backend not in _UPSERTS:
            raise ValueError(f"index progress supports sqlite and postgresql, not {backend!r}")
        self._engine = engine
        self._upsert = _UPSERTS[backend]
        try:
            _metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another process created it between check and create
            if not sa.inspect(engine).has_table(index_progress.name):
                raise

    @classmethod
    def beside(cls, ledger: ChunkLedger) -> IndexProgress:
        return cls(ledger.engine)

    def get(self, store: str) -> StoreProgress | None:
        c = index_progress.c
        query = sa.select(c.embedder, c.event_cursor).where(c.store == store)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        cursor = EventCursor.from_json(row.event_cursor) if row.event_cursor else None
        return StoreProgress(row.embedder, cursor)

    def record(self, store: str, embedder: str, cursor: EventCursor | None) -> None:
        """The store now holds `embedder`'s vectors up to `cursor` (None: rebuild begun)."""
        values = {
            "store": store,
            "embedder": embedder,
            "event_cursor": cursor.to_json() if cursor is not None else None,
            "updated_at": clock.now(),
        }
        insert = self._upsert(index_progress).values(values)
        with self._engine.begin() as conn:
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["store"],
                    set_={
                        k: insert.excluded[k] for k in ("embedder", "event_cursor", "updated_at")
                    },
                )
            )


def resume(
    progress: IndexProgress,
    store: VectorStore,
    ledger: ChunkLedger,
    embedder: Embedder,
    recorded: Recorded | None,
    warn: Callable[[str], None],
) -> Start:
    """Where vector_index starts for this (store, embedder): its cursor; else, for a
    deployment from before per-store progress, the cursor of the last materialization if that
    run wrote to this store with this embedder; else a rebuild from the first source event,
    after emptying the store if it holds another (or an unknown) embedder's vectors. A store
    of another dimension fails (StoreDimensionError) before anything is deleted, unless it
    can be dropped whole (the embedded LanceDB table: derived data, rebuilt at any size)."""
    mine = progress.get(store.name)
    signature = embedder.signature
    if mine is not None and mine.embedder == signature:
        if mine.cursor is not None:
            return Start(mine.cursor, False, f"store {store.name}: progress found")
        return Start(EventCursor(), True, _no_progress(store, signature, "a rebuild is under way"))
    if (
        mine is None
        and recorded is not None
        and (recorded.store, recorded.embedder) == (store.name, signature)
    ):
        return Start(
            recorded.cursor,
            False,
            f"store {store.name}: adopted the cursor of vector_index's last materialization "
            f"(same store, embedder {signature})",
        )
    if mine is not None or ledger.count() or store.count():
        if not hasattr(store, "drop"):  # a service's index: a misconfiguration deletes nothing
            store.ensure_dimension(embedder.dimension)
        if mine is None:
            held = "an unrecorded embedder"
        elif mine.embedder == EMPTYING:
            held = "an emptying that was interrupted"
        else:
            held = f"embedder {mine.embedder}"
        deleted = empty_store(progress, store, ledger, signature)
        warn(
            f"store {store.name} held vectors of {held}, not {signature}: deleted its "
            f"{deleted} vectors so the two are never mixed"
        )
    else:
        progress.record(store.name, signature, None)
    return Start(EventCursor(), True, _no_progress(store, signature))


def empty_store(
    progress: IndexProgress, store: VectorStore, ledger: ChunkLedger, signature: str
) -> int:
    """Delete every vector of the store and its ledger partition, leaving it claimed for a
    rebuild with the embedder `signature`; answers how many ids were deleted. Marked EMPTYING
    first: a run killed part-way leaves a mark no embedder matches, so the next run empties
    what is left instead of trusting a half-cleared ledger or an older cursor."""
    progress.record(store.name, EMPTYING, None)
    ids = sorted(ledger.all_ids() | store.ids())
    if hasattr(store, "drop"):  # an embedded table: dropped whole, so its vector size may change
        store.drop()
    elif ids:
        store.delete(ids)
    if ids:
        ledger.forget(ids)
    progress.record(store.name, signature, None)
    return len(ids)


def indexed(ledger: ChunkLedger) -> tuple[int, int]:
    """(documents, chunks) the ledger records for its store: a rebuild's progress so far."""
    c = chunk_ledger.c
    query = sa.select(sa.func.count(sa.distinct(c.doc_id)), sa.func.count()).where(
        c.store == ledger.store_name
    )
    with ledger.engine.connect() as conn:
        documents, chunks = conn.execute(query).one()
    return int(documents), int(chunks)


def _no_progress(store: VectorStore, signature: str, detail: str = "") -> str:
    return f"no progress for store {store.name} with embedder {signature}" + (
        f" ({detail})" if detail else ""
    )
