"""HubSpot's associations as one warehouse table, `hubspot.associations`, answerable both ways.

An association links two records and HubSpot shows it from either side (v4 reads of a
contact's deals and of a deal's contacts name the same link). The table holds each link once,
in a canonical orientation (the object types in name order: `object_a` < `object_b`), keyed
by (object_a, id_a, object_b, id_b): reading it from both sides merges into one row, and
`associated()` answers a contact's deals and a deal's contacts from that row alike.

The pairs are read with the records (tables.py: one v4 batch read per associated type for up
to 1,000 records) and spooled to a file while the object tables load, then loaded in a second
dlt load of this one table (its rows arrive from every object's reader, so it cannot stream
beside them without one reader waiting on another). HubSpot exposes no feed of removed
associations (webhooks aside): what the API shows is a record's current set. So a link stored
for a record this run read (or archived: an archived record's links are gone) whose side it
read, and not read again, was removed: it gets `_deleted_at`, as archived records do. A
removal seen from neither side (no record of the pair was modified) stays until one is; the
HubSpot emulator assumes association changes move the modified date of contacts, companies,
deals and tickets (their num_associated_* properties), not of engagements.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sync_pipelines.warehouse.destination import ident
from sync_pipelines.warehouse.tables import CrmRun, Record, Table

SOURCE = "hubspot"
NAME = "associations"
KEY = ("object_a", "id_a", "object_b", "id_b")


def pair(obj: str, rid: str, target: str, target_id: str) -> Record:
    """The canonical row of a link between two records, whichever side it was read from."""
    (a, ia), (b, ib) = sorted([(obj, str(rid)), (target, str(target_id))])
    return {"object_a": a, "id_a": ia, "object_b": b, "id_b": ib}


def side(obj: str, target: str) -> str:
    """Which column pair holds `obj`'s id in a link to `target`: "a" or "b"."""
    return "a" if obj <= target else "b"


class Spool:
    """Link rows written by the object readers (any thread) to a JSON-lines file, read back
    in pages once they are done: memory stays flat in the number of links."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self.written = 0

    def write(self, rows: Iterable[Record]) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        with self._lock:
            self._handle.write(text)
            self.written += text.count("\n")

    def pages(self, size: int) -> Iterator[list[Record]]:
        with self._lock:
            self._handle.flush()
        page: list[Record] = []
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                page.append(json.loads(line))
                if len(page) >= size:
                    yield page
                    page = []
        if page:
            yield page

    def close(self) -> None:
        with self._lock:
            self._handle.close()
        self.path.unlink(missing_ok=True)


def table(spool: Spool) -> Table:
    """The associations table of a run, its pages the spooled links."""
    return Table(name=NAME, primary_key=KEY, pages=lambda crm: spool.pages(crm.page_size))


def prune(warehouse, crm: CrmRun, reads: dict[str, tuple[str, ...]]) -> int:
    """Soft-deletes the stored links of records this run loaded that the run did not read
    again (from the side it read); answers how many. `reads`: object -> the associated
    objects its records were read with, for the object tables this run loaded."""
    synced = datetime.fromtimestamp(crm.now, tz=UTC)
    links = f"{SOURCE}.{NAME}"
    existing = set(warehouse.tables(SOURCE))  # dlt creates no table for an empty object
    if NAME not in existing:
        return 0
    total = 0
    for obj, targets in reads.items():
        if obj not in existing:
            continue
        for target in targets:
            mine, other = side(obj, target), "b" if side(obj, target) == "a" else "a"
            sql = (
                f"UPDATE {links} SET _deleted_at = %s "
                f"WHERE _connection_id = %s AND _deleted_at IS NULL AND _synced_at < %s "
                f"AND object_{mine} = %s AND object_{other} = %s AND id_{mine} IN ("
                f"SELECT id FROM {SOURCE}.{ident(obj)} "
                f"WHERE _connection_id = %s AND _synced_at = %s) RETURNING id_{mine}"
            )
            args = (synced, crm.connection_id, synced, obj, target, crm.connection_id, synced)
            total += len(_write(warehouse, sql, args))
    return total


def _write(warehouse, sql: str, args: tuple) -> list:
    """Run a statement that changes the warehouse (its `query` reads DuckDB read-only)."""
    if warehouse.is_postgres:
        return warehouse.query(SOURCE, sql, args)
    import duckdb

    with warehouse.writer(SOURCE), duckdb.connect(str(warehouse.duckdb_path(SOURCE))) as conn:
        return conn.execute(sql.replace("%s", "?"), list(args)).fetchall()


def associated(warehouse, connection: str, obj: str, record_id: str, target: str) -> list[str]:
    """The ids of `target` records linked to record `record_id` of `obj` (live links), from
    the one row each link has: a contact's deals and a deal's contacts alike."""
    mine, other = side(obj, target), "b" if side(obj, target) == "a" else "a"
    if NAME not in warehouse.tables(SOURCE):
        return []
    rows = warehouse.query(
        SOURCE,
        f"SELECT id_{other} AS id FROM {SOURCE}.{NAME} WHERE _connection_id = %s "
        f"AND _deleted_at IS NULL AND object_{mine} = %s AND id_{mine} = %s "
        f"AND object_{other} = %s ORDER BY id_{other}",
        (connection, obj, str(record_id), target),
    )
    return [r["id"] for r in rows]
