"""The chunk ledger: which vector ids a store holds, with the content hash each was built from.

It decides what to embed (only ids whose hash changed) and what to delete (ids a re-synced
document no longer produces), without scanning the store. Record chunks only after the store
accepted them, so a killed run leaves at worst some ids un-recorded: the next run re-embeds
those and nothing is lost or duplicated.
"""

from __future__ import annotations

import threading
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sync_pipelines import clock
from sync_pipelines.index.chunking import Chunk
from sync_pipelines.index.stores.base import batched

_IN_LIST = 500  # ids per IN (...) query
_ROWS_PER_INSERT = 500
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
    sa.Index("ix_chunk_ledger_store_doc", "store", "doc_id"),
)


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
        self._write_lock = threading.Lock()
        try:
            _metadata.create_all(self._engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another process created it between check and create
            if not sa.inspect(self._engine).has_table(chunk_ledger.name):
                raise

    def hashes(self, vector_ids: Iterable[str]) -> dict[str, str]:
        found = {}
        with self._engine.connect() as conn:
            for batch in batched(sorted(set(vector_ids)), _IN_LIST):
                query = sa.select(chunk_ledger.c.vector_id, chunk_ledger.c.content_hash).where(
                    chunk_ledger.c.store == self.store_name, chunk_ledger.c.vector_id.in_(batch)
                )
                found.update(dict(conn.execute(query).all()))
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
        """Insert or update the rows of chunks the store now holds."""
        now = clock.now()
        rows = {
            c.vector_id: {
                "store": self.store_name,
                "vector_id": c.vector_id,
                "doc_id": c.doc_id,
                "chunk_n": c.chunk_n,
                "content_hash": c.content_hash,
                "updated_at": now,
            }
            for c in chunks
        }
        with self._write_lock, self._engine.begin() as conn:
            for batch in batched(list(rows.values()), _ROWS_PER_INSERT):
                insert = self._upsert(chunk_ledger).values(batch)
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=["store", "vector_id"],
                        set_={
                            c: insert.excluded[c]
                            for c in ("doc_id", "chunk_n", "content_hash", "updated_at")
                        },
                    )
                )

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

    def close(self) -> None:
        self._engine.dispose()


def _engine_options(backend: str) -> dict:
    if backend == "sqlite":
        # Runs in separate processes share the file: wait for a lock rather than fail.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}
