"""Calls and form submissions CallRail no longer lists become soft deletes in the warehouse.

CallRail's API shows no deletion: a call marked as spam (or removed) is simply absent from
every listing. A run reads its whole time range of each object (every page, or the run fails
and nothing loads), so a row the warehouse holds for that range and the read did not return
is gone upstream. Before the load (the tables are built before dlt takes the warehouse's
writer lock) the run asks the warehouse for the connection's live rows of the range, ids and
times only (`at_epoch`, a column the tables add to every record, makes the range query the
same on DuckDB and PostgreSQL); after the API's pages it yields one stub per missing id,
flagged `absent_upstream`, which the loader turns into `_deleted_at` and, through the row's
stored `_doc_id`, a tombstone. A stub replaces the row's other columns (the row keeps its
key, time and document id). Conversations are left out: their time (the last message) moves
when a message arrives, so absence from an old range proves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sync_pipelines.documents import Document

SOURCE = "callrail"
AT = "at_epoch"  # the record's own time in epoch seconds, on every row
ABSENT = "absent_upstream"
ABSENT_DOC = "absent_doc_id"
KINDS = ("calls", "form_submissions")
Known = dict[str, tuple[float, str | None]]


def stored(run: Any, kind: str, lower: float, upper: float) -> Known:
    """The connection's live rows of `kind` whose time lies in [lower, upper): id -> (time,
    doc_id). Empty before the first load, or when the run has no warehouse (unit tests)."""
    try:
        warehouse = run.run.context.resources.warehouse
    except AttributeError:
        return {}
    if kind not in warehouse.tables(SOURCE):
        return {}
    if AT not in {r["column_name"] for r in _columns(warehouse, kind)}:
        return {}
    sql = (
        f"SELECT id, {AT}, _doc_id FROM {SOURCE}.{kind} WHERE _connection_id = %s "
        f"AND _deleted_at IS NULL AND {AT} >= %s AND {AT} < %s"
    )
    rows = warehouse.query(SOURCE, sql, (run.connection_id, lower, upper))
    return {str(r["id"]): (float(r[AT]), r["_doc_id"]) for r in rows}


def _columns(warehouse: Any, kind: str) -> list[dict]:
    return warehouse.query(
        SOURCE,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        (SOURCE, kind),
    )


def stubs(known: Known, seen: set[str], time_field: str, size: int) -> Iterator[list[dict]]:
    """Pages of stubs for the stored ids the complete read did not return."""
    gone = sorted(set(known) - seen)
    for start in range(0, len(gone), max(1, size)):
        yield [
            {
                "id": rid,
                time_field: datetime.fromtimestamp(known[rid][0], UTC).isoformat(),
                AT: known[rid][0],
                ABSENT: True,
                ABSENT_DOC: known[rid][1],
            }
            for rid in gone[start : start + size]
        ]


def is_absent(record: dict) -> bool:
    return bool(record.get(ABSENT))


def retracted(record: dict, connection: str) -> Document | None:
    """The document a stub retracts (the loader tombstones its doc_id), if the row had one."""
    doc_id = record.get(ABSENT_DOC)
    if not doc_id:
        return None
    at = float(record[AT])
    return Document(
        doc_id=str(doc_id),
        source=SOURCE,
        connection=connection,
        title="",
        text="",
        url="",
        author="",
        created_at="",
        updated_at="",
        timestamp_epoch=at,
    )
