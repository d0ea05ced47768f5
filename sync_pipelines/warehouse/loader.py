"""One connection's CRM tables through dlt, all or nothing, teeing documents as rows stream.

Each Table's pages become a dlt resource (merge on `_connection_id` + the table's key) whose
generator adds the loader's columns and collects the Documents and Tombstones the records
imply while dlt buffers `batch_size` rows and writes files: memory stays flat in the number
of records. dlt extracts every table before it loads anything, so a page that fails stops the
run with nothing loaded; each run works in its own dlt folder (removed after), so a failed
run leaves no package behind for the next one to load by surprise. Merge makes a re-run or an
overlap replace rows, never duplicate them. Full-refresh tables soft-delete the connection's
rows the run did not see, after the load succeeded and never otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync_pipelines.documents import Document, Tombstone
from sync_pipelines.warehouse.destination import WarehouseResource, ident
from sync_pipelines.warehouse.tables import CrmRun, Record, Table

# No calls home from dlt's anonymous telemetry (set before dlt reads its config).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

CONNECTION_COL = "_connection_id"
SYNCED_COL = "_synced_at"
DELETED_COL = "_deleted_at"
HASH_COL = "_row_hash"
DOC_COL = "_doc_id"  # the doc_id of the row's document, so a later deletion can tombstone it
DELETED_REASON = "deleted upstream"
ABSENT_REASON = "no longer in the source (full refresh)"


@dataclass
class Tee:
    """What the records said while they streamed into dlt."""

    documents: list[Document] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    rows: Counter = field(default_factory=Counter)
    deleted: Counter = field(default_factory=Counter)
    pages: Counter = field(default_factory=Counter)
    unchanged: int = 0  # documents not written again: their full-refresh row did not change


def row_hash(record: Record) -> str:
    text = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def column_name(name: str) -> str:
    """The column dlt makes of a record key (its snake_case naming convention)."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention().normalize_identifier(name)


def _key(values: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def rows_of(
    table: Table, crm: CrmRun, tee: Tee, seen: dict[tuple[str, ...], tuple] | None
) -> Iterator[list[Record]]:
    """The table's pages with the loader's columns, teeing documents and tombstones.
    `seen` (full refresh only) maps each stored key to its (hash, deleted_at)."""
    synced = _utc(crm.now)
    for page in table.pages(crm):
        tee.pages[table.name] += 1
        out = []
        for record in page:
            row = dict(record)
            deleted = bool(table.is_deleted and table.is_deleted(record))
            document = table.document(record, crm) if table.document else None
            changed = True
            if table.full_refresh:
                row[HASH_COL] = row_hash(record)
                before = seen.get(_key(record.get(k) for k in table.primary_key)) if seen else None
                changed = before is None or before[0] != row[HASH_COL] or before[1] is not None
            when = table.updated_at(record) if table.updated_at else None
            row[CONNECTION_COL] = crm.connection_id
            row[SYNCED_COL] = synced
            row[DELETED_COL] = _utc(when if when is not None else crm.now) if deleted else None
            row[DOC_COL] = document.doc_id if document else None
            if deleted:
                tee.deleted[table.name] += 1
                if document:
                    tee.tombstones.append(Tombstone(document.doc_id, DELETED_REASON, crm.now))
            elif document and changed:
                tee.documents.append(document)
            elif document:
                tee.unchanged += 1
            out.append(row)
        tee.rows[table.name] += len(out)
        if out:
            yield out


def _columns(table: Table) -> dict[str, dict]:
    hints = {
        CONNECTION_COL: {"data_type": "text", "nullable": False},
        SYNCED_COL: {"data_type": "timestamp", "nullable": True},
        DELETED_COL: {"data_type": "timestamp", "nullable": True},
        DOC_COL: {"data_type": "text", "nullable": True},
    }
    if table.full_refresh:
        hints[HASH_COL] = {"data_type": "text", "nullable": True}
    return hints


def _existing(pipeline, source: str, table: Table, connection: str) -> dict[tuple, tuple]:
    """(hash, deleted_at) of the connection's stored rows of a full-refresh table."""
    keys = [ident(column_name(k)) for k in table.primary_key]
    sql = (
        f"SELECT {', '.join(keys)}, {HASH_COL}, {DELETED_COL} "
        f"FROM {ident(source)}.{ident(table.name)} WHERE {CONNECTION_COL} = %s"
    )
    with pipeline.sql_client() as client:
        if not _has_table(client, source, table.name):
            return {}
        rows = client.execute_sql(sql, connection)
    n = len(keys)
    return {_key(r[:n]): (r[n], r[n + 1]) for r in rows or []}


def _has_table(client, source: str, name: str) -> bool:
    rows = client.execute_sql(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        source,
        name,
    )
    return bool(rows)


def _soft_delete_absent(pipeline, source, table: Table, crm: CrmRun, load_id, tee) -> None:
    """Rows of the connection this run's (complete, loaded) read did not contain."""
    name = f"{ident(source)}.{ident(table.name)}"
    where = (
        f"{CONNECTION_COL} = %s AND {DELETED_COL} IS NULL "
        f"AND ({'_dlt_load_id <> %s' if load_id else 'TRUE'})"
    )
    args = (crm.connection_id, load_id) if load_id else (crm.connection_id,)
    with pipeline.sql_client() as client:
        if not _has_table(client, source, table.name):
            return
        gone = client.execute_sql(f"SELECT {DOC_COL} FROM {name} WHERE {where}", *args) or []
        if not gone:
            return
        client.execute_sql(
            f"UPDATE {name} SET {DELETED_COL} = %s WHERE {where}", _utc(crm.now), *args
        )
    tee.deleted[table.name] += len(gone)
    tee.tombstones.extend(Tombstone(d, ABSENT_REASON, crm.now) for (d,) in gone if d)


def _cause(exc: BaseException) -> BaseException:
    """The source's own error under dlt's wrappers (a page's 401 stays permanent, a reset
    transient: the asset decides retries by it)."""
    inner = exc
    while inner.__cause__ is not None and type(inner).__module__.startswith("dlt."):
        inner = inner.__cause__
    return inner


def load(
    source: str,
    crm: CrmRun,
    tables: Sequence[Table],
    warehouse: WarehouseResource,
    batch_size: int,
    run_id: str,
) -> Tee:
    """Extract every table, then load them; answers what the records said."""
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed

    dlt.config["data_writer.buffer_max_items"] = batch_size
    tee = Tee()
    folder = warehouse.pipelines_dir(run_id)
    pipeline = dlt.pipeline(
        pipeline_name=f"sync_{source}_{crm.connection_id}",
        destination=warehouse.destination(source),
        dataset_name=source,
        pipelines_dir=str(folder),
    )
    try:
        with warehouse.writer(source):
            seen = {
                t.name: _existing(pipeline, source, t, crm.connection_id)
                for t in tables
                if t.full_refresh
            }
            resources = [
                dlt.resource(
                    rows_of(t, crm, tee, seen.get(t.name)),
                    name=t.name,
                    table_name=t.name,
                    write_disposition="merge",
                    primary_key=(CONNECTION_COL, *(column_name(k) for k in t.primary_key)),
                    columns=_columns(t),
                )
                for t in tables
            ]
            try:
                info = pipeline.run(
                    resources, schema=dlt.Schema(source), loader_file_format=warehouse.file_format()
                )
            except PipelineStepFailed as exc:
                raise _cause(exc) from exc
            info.raise_on_failed_jobs()
            load_id = info.loads_ids[-1] if info.loads_ids else None
            for t in tables:
                if t.full_refresh:
                    _soft_delete_absent(pipeline, source, t, crm, load_id, tee)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return tee
