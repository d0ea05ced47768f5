"""One connection's CRM tables through dlt, loaded in batches while the next pages are read.

Each Table's pages get the loader's columns and tee the Documents and Tombstones the records
imply (`rows_of`), in a thread that reads ahead of the loader (feed.py): the vendor's pacing
and dlt's extract/normalize/load per row overlap instead of adding up. Whenever `batch_size`
rows are waiting, everything waiting (at most LOAD_BATCHES x batch_size rows, the feed's
bound: memory stays flat in the number of records) becomes one dlt load, merged on
`_connection_id` + the table's key, so a re-run or an overlap replaces rows, never duplicates
them. A run that fails part way may leave the batches before the failure loaded; that is
harmless: the asset records the partition's mark only on success, so the next run reads the
same window again and merges over them, and full-refresh tables keep such rows "changed" until
a complete run (refresh.py) so no document is lost. Only after every batch loaded are a
full-refresh table's rows the run did not see soft-deleted. Each run works in its own dlt
folder (removed after), so nothing a failed run extracted is loaded later by surprise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sync_pipelines.documents import Document, Tombstone
from sync_pipelines.warehouse import refresh
from sync_pipelines.warehouse.destination import WarehouseResource
from sync_pipelines.warehouse.feed import Batch, PageFeed
from sync_pipelines.warehouse.refresh import (
    CONNECTION_COL,
    DELETED_COL,
    DOC_COL,
    HASH_COL,
    READ_HASH_COL,
    Stored,
)
from sync_pipelines.warehouse.tables import CrmRun, Record, Table

# No calls home from dlt's anonymous telemetry (set before dlt reads its config).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

SYNCED_COL = "_synced_at"
DELETED_REASON = "deleted upstream"
# A load takes what the reader got ahead by, up to this many batches: few enough rows to
# keep memory flat, enough that dlt's fixed cost per load (~0.3 s) is shared by many rows.
LOAD_BATCHES = 3


@dataclass
class Tee:
    """What the records said while they streamed into dlt."""

    documents: list[Document] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    rows: Counter = field(default_factory=Counter)
    deleted: Counter = field(default_factory=Counter)
    pages: Counter = field(default_factory=Counter)
    unchanged: int = 0  # documents not written again: their full-refresh row did not change
    loads: int = 0  # dlt loads (load packages) the run made
    load_s: float = 0.0  # seconds in dlt (extract, normalize, load)
    tail_s: float = 0.0  # of which after the last page was read: what the overlap did not hide


def row_hash(record: Record) -> str:
    text = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def column_name(name: str) -> str:
    """The column dlt makes of a record key (its snake_case naming convention)."""
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention().normalize_identifier(name)


def rows_of(table: Table, crm: CrmRun, tee: Tee, stored: Stored | None) -> Iterator[list[Record]]:
    """The table's pages with the loader's columns, teeing documents and tombstones.
    `stored` (full refresh only): the connection's rows as they were before this run."""
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
                digest = row_hash(record)
                key = refresh.key_of(record.get(k) for k in table.primary_key)
                changed = refresh.is_changed(stored, key, digest)
                row[READ_HASH_COL] = digest
                row[HASH_COL] = None if changed else digest  # confirmed after a whole read
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
        hints[READ_HASH_COL] = {"data_type": "text", "nullable": True}
    return hints


def _cause(exc: BaseException) -> BaseException:
    """The destination's own error under dlt's wrappers (the asset decides retries by it;
    the source's errors reach the loader unwrapped, from the feed)."""
    inner = exc
    while inner.__cause__ is not None and type(inner).__module__.startswith("dlt."):
        inner = inner.__cause__
    return inner


class _Batches:
    """One run's dlt pipeline, loading a batch of pages per call."""

    def __init__(self, source: str, crm: CrmRun, tables: Sequence[Table], warehouse, folder):
        import dlt

        self.source, self.warehouse = source, warehouse
        self.tables = {t.name: t for t in tables}
        self.pipeline = dlt.pipeline(
            pipeline_name=f"sync_{source}_{crm.connection_id}",
            destination=warehouse.destination(source),
            dataset_name=source,
            pipelines_dir=str(folder),
        )
        self.load_ids: list[str] = []

    def load(self, batch: Batch, tee: Tee) -> None:
        """One dlt load (extract, normalize, load) of the batch's pages."""
        import dlt
        from dlt.pipeline.exceptions import PipelineStepFailed

        resources = [
            dlt.resource(
                iter(pages),
                name=name,
                table_name=name,
                write_disposition="merge",
                primary_key=(CONNECTION_COL, *(column_name(k) for k in table.primary_key)),
                columns=_columns(table),
            )
            for name, pages in batch.items()
            for table in (self.tables[name],)
        ]
        started = time.monotonic()
        try:
            info = self.pipeline.run(
                resources,
                schema=dlt.Schema(self.source),
                loader_file_format=self.warehouse.file_format(),
            )
        except PipelineStepFailed as exc:
            raise _cause(exc) from exc
        info.raise_on_failed_jobs()
        self.load_ids.extend(info.loads_ids)
        seconds = time.monotonic() - started
        tee.loads += 1
        tee.load_s += seconds


def load(
    source: str,
    crm: CrmRun,
    tables: Sequence[Table],
    warehouse: WarehouseResource,
    batch_size: int,
    run_id: str,
) -> Tee:
    """Read every table's pages and load them in batches as they come; answers what the
    records said."""
    import dlt

    dlt.config["data_writer.buffer_max_items"] = batch_size
    tee = Tee()
    folder = warehouse.pipelines_dir(run_id)
    try:
        with warehouse.writer(source):
            batches = _Batches(source, crm, tables, warehouse, folder)
            stored = {
                t.name: refresh.stored_hashes(
                    batches.pipeline,
                    source,
                    t.name,
                    [column_name(k) for k in t.primary_key],
                    crm.connection_id,
                )
                for t in tables
                if t.full_refresh
            }
            reading = ((t.name, rows_of(t, crm, tee, stored.get(t.name))) for t in tables)
            with PageFeed(reading, limit=LOAD_BATCHES * batch_size) as feed:
                # The first load also restores dlt's state and creates the tables: done with
                # the first page, it costs nothing while the next pages are still coming.
                while (batch := feed.take(at_least=batch_size if tee.loads else 1)) is not None:
                    batches.load(batch, tee)
                tee.tail_s = time.monotonic() - feed.ended_at
            for t in tables:
                if t.full_refresh:
                    deleted, tombstones = refresh.finish(
                        batches.pipeline, source, t.name, crm.connection_id,
                        batches.load_ids, crm.now,
                    )  # fmt: skip
                    tee.deleted[t.name] += deleted
                    tee.tombstones.extend(tombstones)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return tee
