"""The chunk ledger: which vector ids a store holds, with the hashes each was built from.

It decides what to embed (only ids whose content hash changed), what only needs its stored
metadata replaced (same content hash, new metadata hash) and what to delete (ids a re-synced
document no longer produces; documents a listing no longer shows, found by their partition
time), without scanning the store. Record chunks only after the store accepted them, so a
killed run leaves at worst some ids un-recorded: the next run re-embeds those and nothing is
lost or duplicated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sync_pipelines import clock
from sync_pipelines.index.chunking import Chunk
from sync_pipelines.index.stores.base import batched

_IN_LIST = 500  # ids per IN (...) query
_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}

_metadata = sa.MetaData()
chunk_ledger = sa.Table(
    "chunk_ledger",
    _metadata,
    sa.Column("store", sa.Text, primary_key=True),
    sa.Column("vector_id", sa.Text, primary_key=True),
    sa.Column("doc_id", sa.Text, nullable=False),
    sa.Column("chunk_n", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Added with metadata-only updates and listings: NULL in rows written before (the
    # content hash of such a row is the legacy one, chunking.legacy_content_hash).
    sa.Column("metadata_hash", sa.Text, nullable=True),
    sa.Column("doc_time", sa.Float, nullable=True),
    sa.Index("ix_chunk_ledger_store_doc", "store", "doc_id"),
    sa.Index("ix_chunk_ledger_store_time", "store", "doc_time"),
)
_ADDED_COLUMNS = ("metadata_hash", "doc_time")
_UPDATED_ON_RECORD = (
    "doc_id",
    "chunk_n",
    "content_hash",
    "metadata_hash",
    "doc_time",
    "updated_at",
)


@dataclass(frozen=True)
class LedgerRow:
    content_hash: str
    metadata_hash: str | None  # None: a row from before metadata hashes (legacy content hash)
    doc_time: float | None


class ChunkLedger:
    """Ledger rows of one store (`store_name` = the store's `.name`) in a SQL database.

    SQLite file URLs for the embedded setup, PostgreSQL (`postgresql+psycopg2://...`) beside
    Dagster's run storage in deployment.
    """

    def __init__(self, url: str, store_name: str):
        backend = sa.engine.make_url(url).get_backend_name()
        if backend not in _UPSERTS:
            raise ValueError(f"chunk ledger supports sqlite and postgresql, not {backend!r}")
        self.store_name = store_name
        self._upsert = _UPSERTS[backend]
        self._engine = sa.create_engine(url, **_engine_options(backend))
        if backend == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.Lock()
        insert = self._upsert(chunk_ledger)
        self._record_statement = insert.on_conflict_do_update(
            index_elements=["store", "vector_id"],
            set_={c: insert.excluded[c] for c in _UPDATED_ON_RECORD},
        )
        self._create_or_upgrade()

    def _create_or_upgrade(self) -> None:
        """Create the table, or add the columns a ledger of an earlier version lacks."""
        try:
            _metadata.create_all(self._engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another process created it between check and create
            if not sa.inspect(self._engine).has_table(chunk_ledger.name):
                raise
        present = {c["name"] for c in sa.inspect(self._engine).get_columns(chunk_ledger.name)}
        for name in _ADDED_COLUMNS:
            if name in present:
                continue
            kind = chunk_ledger.c[name].type.compile(dialect=self._engine.dialect)
            try:
                with self._engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE chunk_ledger ADD COLUMN {name} {kind}"))
            except sa.exc.DBAPIError:  # another process added it first
                columns = sa.inspect(self._engine).get_columns(chunk_ledger.name)
                if name not in {c["name"] for c in columns}:
                    raise
        for index in chunk_ledger.indexes:  # the time index, on an upgraded table
            try:
                with self._engine.begin() as conn:
                    index.create(conn, checkfirst=True)
            except sa.exc.DBAPIError:  # another process created it first
                names = {i["name"] for i in sa.inspect(self._engine).get_indexes("chunk_ledger")}
                if index.name not in names:
                    raise

    def hashes(self, vector_ids: Iterable[str]) -> dict[str, str]:
        """Content hash per known id."""
        return {vid: row.content_hash for vid, row in self.rows(vector_ids).items()}

    def rows(self, vector_ids: Iterable[str]) -> dict[str, LedgerRow]:
        found = {}
        c = chunk_ledger.c
        with self._engine.connect() as conn:
            for batch in batched(sorted(set(vector_ids)), _IN_LIST):
                query = sa.select(c.vector_id, c.content_hash, c.metadata_hash, c.doc_time).where(
                    c.store == self.store_name, c.vector_id.in_(batch)
                )
                for vid, content, meta, doc_time in conn.execute(query):
                    found[vid] = LedgerRow(content, meta, doc_time)
        return found

    def ids_in_range(self, scope: str, start: float, end: float) -> dict[str, set[str]]:
        """Vector ids per document of `scope` (a doc_id prefix) whose partition time lies in
        [start, end); rows without a time (legacy) are never in a range."""
        c = chunk_ledger.c
        pattern = scope.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = sa.select(c.doc_id, c.vector_id).where(
            c.store == self.store_name,
            c.doc_id.like(pattern, escape="\\"),
            c.doc_time >= start,
            c.doc_time < end,
        )
        found: dict[str, set[str]] = {}
        with self._engine.connect() as conn:
            for doc_id, vector_id in conn.execute(query):
                found.setdefault(doc_id, set()).add(vector_id)
        return found

    def ids_by_doc(self, doc_ids: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        with self._engine.connect() as conn:
            for batch in batched(sorted(set(doc_ids)), _IN_LIST):
                query = sa.select(chunk_ledger.c.doc_id, chunk_ledger.c.vector_id).where(
                    chunk_ledger.c.store == self.store_name, chunk_ledger.c.doc_id.in_(batch)
                )
                for doc_id, vector_id in conn.execute(query):
                    found.setdefault(doc_id, set()).add(vector_id)
        return found

    def record(self, chunks: Sequence[Chunk]) -> None:
        """Insert or update the rows of chunks the store now holds (one statement, compiled
        once, executed for every row: the pipeline records after each store request)."""
        now = clock.now()
        rows = {
            c.vector_id: {
                "store": self.store_name,
                "vector_id": c.vector_id,
                "doc_id": c.doc_id,
                "chunk_n": c.chunk_n,
                "content_hash": c.content_hash,
                "metadata_hash": c.metadata_hash or None,
                "doc_time": c.doc_time,
                "updated_at": now,
            }
            for c in chunks
        }
        if not rows:
            return
        with self._write_lock, self._engine.begin() as conn:
            conn.execute(self._record_statement, list(rows.values()))

    def forget(self, vector_ids: Iterable[str]) -> None:
        """Drop the rows of ids deleted from the store."""
        with self._write_lock, self._engine.begin() as conn:
            for batch in batched(sorted(set(vector_ids)), _IN_LIST):
                conn.execute(
                    sa.delete(chunk_ledger).where(
                        chunk_ledger.c.store == self.store_name,
                        chunk_ledger.c.vector_id.in_(batch),
                    )
                )

    def count(self) -> int:
        query = sa.select(sa.func.count()).where(chunk_ledger.c.store == self.store_name)
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def all_ids(self) -> set[str]:
        query = sa.select(chunk_ledger.c.vector_id).where(chunk_ledger.c.store == self.store_name)
        with self._engine.connect() as conn:
            return set(conn.execute(query).scalars())

    @property
    def engine(self) -> sa.Engine:
        """The ledger's database, shared by what lives beside it (index/progress.py)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:
    """Write-ahead logging, synced at checkpoints: a commit per store request no longer
    waits on fsync, and readers do not block the writer. A power loss can drop the last
    commits; those chunks are then embedded again next run (the store already holds them),
    which is the ledger's safe direction."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _engine_options(backend: str) -> dict:
    if backend == "sqlite":
        # Runs in separate processes share the file: wait for a lock rather than fail.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}
