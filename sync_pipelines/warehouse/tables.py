"""What a CRM source declares: the objects it loads as warehouse tables, and which of them
feed the index.

A CRM source's sync entry is `crm_sync(tables)` (warehouse/crm.py): the shared loader streams
each Table's pages through dlt into `<source>.<table>` (merged on `_connection_id` + the
table's primary key, so re-runs and overlaps never duplicate rows), turns the records a Table
says people search into Documents for vector_index, and records that are deleted upstream
into soft deletes (`_deleted_at`) and Tombstones. Sources write no loading code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sync_pipelines.documents import Document
from sync_pipelines.sources.base import SourceRun

Record = dict[str, Any]
DEFAULT_PAGE_SIZE = 200  # records per API page (the old system's setting)
DEFAULT_BATCH_SIZE = 1000  # records per bulk insert batch (dlt buffer and file size)


@dataclass(frozen=True)
class CrmRun:
    """What a Table's functions get for one connection and window.

    `lower`/`upper` bound the records' updated time ([lower, upper), epoch seconds:
    `SyncWindow.bounds` with the partition's mark and the source's overlap), `page_size` is the
    connection's (option `page_size`, else SYNC_CRM_PAGE_SIZE, else 200) and `full` says the
    run reads its days whole (no mark)."""

    run: SourceRun
    lower: float
    upper: float
    now: float
    page_size: int
    full: bool

    @property
    def client(self) -> Any:
        return self.run.client

    @property
    def connection_id(self) -> str:
        return self.run.connection.id

    @property
    def options(self) -> Any:
        return self.run.options


@dataclass(frozen=True)
class Table:
    """One CRM object, loaded as one table of the source's dataset.

    name: the table (`contacts` -> `<source>.contacts`), lower-case letters, digits and '_'.
    primary_key: the record's own key columns, e.g. ("id",); the loader prepends
        `_connection_id`, so two connections of one source share the table.
    pages: (run) -> pages (lists) of records updated in [run.lower, run.upper), streamed: a
        generator over the API's pages, never the whole object in memory. Nested values
        (lists, dicts) are allowed; dlt infers the schema and evolves it as fields appear.
    document: (record, run) -> the Document people search for this record, or None (e.g. a
        note's body, a call's transcription); None for tables that feed no search.
    is_deleted: (record) -> True when the record says it is deleted upstream (a CRM's
        `archived`): its row gets `_deleted_at` and its document a Tombstone.
    full_refresh: the pages are the whole object every run (no updated-time filter: a
        sheet). Each row gets `_row_hash` (confirmed once a run read the table whole) and
        `_row_hash_read`; rows whose hash did not change cost no document; rows of the
        connection not seen in the run get `_deleted_at` (and tombstones) (refresh.py).
    updated_at: (record) -> its updated time in epoch seconds (None if unknown), which
        puts its document in a partition day and the partition's mark.
    """

    name: str
    primary_key: tuple[str, ...]
    pages: Callable[[CrmRun], Iterable[Sequence[Record]]]
    document: Callable[[Record, CrmRun], Document | None] | None = None
    is_deleted: Callable[[Record], bool] | None = None
    full_refresh: bool = False
    updated_at: Callable[[Record], float | None] | None = None
