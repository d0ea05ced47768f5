"""Change detection and absence of full-refresh tables (a sheet: the whole object every run).

Each row carries two hashes: `_row_hash_read`, the row as last loaded, and `_row_hash`, the row
whose document a complete run has handed over. The loader loads batches while it reads, so a
run that fails half way leaves rows loaded whose documents were never written; such a row
keeps `_row_hash` NULL until a run reads its table whole, so the next run still sees it
changed and writes its document (comparing with `_row_hash_read` would lose it for good).
The comparison is always with the state read once before the run (`stored`), never with rows
this run wrote. After every batch loaded, `finish` soft-deletes the connection's rows this
run did not load and confirms the hashes of the ones it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sync_pipelines.documents import Tombstone
from sync_pipelines.warehouse.destination import ident

CONNECTION_COL = "_connection_id"
DELETED_COL = "_deleted_at"
DOC_COL = "_doc_id"  # the doc_id of the row's document, so a later deletion can tombstone it
HASH_COL = "_row_hash"  # hash of the row whose document a complete run handed over
READ_HASH_COL = "_row_hash_read"  # hash of the row as last loaded (confirmed by `finish`)
ABSENT_REASON = "no longer in the source (full refresh)"

Stored = dict[tuple[str, ...], tuple[str | None, object]]  # key -> (_row_hash, _deleted_at)


def key_of(values) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def is_changed(stored: Stored | None, key: tuple[str, ...], digest: str) -> bool:
    """A row needs its document written unless the run before this one confirmed the same
    hash and the row was not deleted."""
    before = stored.get(key) if stored else None
    return before is None or before[0] != digest or before[1] is not None


def has_table(client, source: str, name: str) -> bool:
    rows = client.execute_sql(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        source,
        name,
    )
    return bool(rows)


def stored_hashes(
    pipeline, source: str, table: str, keys: Sequence[str], connection: str
) -> Stored:
    """(confirmed hash, deleted_at) of the connection's stored rows, read before the run."""
    columns = ", ".join(ident(k) for k in keys)
    sql = (
        f"SELECT {columns}, {HASH_COL}, {DELETED_COL} "
        f"FROM {ident(source)}.{ident(table)} WHERE {CONNECTION_COL} = %s"
    )
    with pipeline.sql_client() as client:
        if not has_table(client, source, table):
            return {}
        rows = client.execute_sql(sql, connection)
    n = len(keys)
    return {key_of(r[:n]): (r[n], r[n + 1]) for r in rows or []}


def finish(pipeline, source: str, table: str, connection: str, load_ids: Sequence[str],
           now: float) -> tuple[int, list[Tombstone]]:  # fmt: skip
    """After a complete read loaded: soft-delete the connection's rows no load of this run
    wrote, confirm the hashes of the rows it did; answers how many rows it deleted and the
    tombstones of their documents."""
    name = f"{ident(source)}.{ident(table)}"
    not_loaded = (
        f"_dlt_load_id NOT IN ({', '.join(['%s'] * len(load_ids))})" if load_ids else "TRUE"
    )
    absent = f"{CONNECTION_COL} = %s AND {DELETED_COL} IS NULL AND {not_loaded}"
    with pipeline.sql_client() as client:
        if not has_table(client, source, table):
            return 0, []
        gone = client.execute_sql(f"SELECT {DOC_COL} FROM {name} WHERE {absent}",
                                  connection, *load_ids) or []  # fmt: skip
        if gone:
            client.execute_sql(
                f"UPDATE {name} SET {DELETED_COL} = %s WHERE {absent}",
                datetime.fromtimestamp(now, tz=UTC),
                connection,
                *load_ids,
            )
        if load_ids:  # else nothing loaded: every row of the connection was just deleted
            client.execute_sql(
                f"UPDATE {name} SET {HASH_COL} = {READ_HASH_COL} WHERE {CONNECTION_COL} = %s "
                f"AND {HASH_COL} IS NULL AND {DELETED_COL} IS NULL",
                connection,
            )
    return len(gone), [Tombstone(doc, ABSENT_REASON, now) for (doc,) in gone if doc]
