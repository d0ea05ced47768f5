"""Which tabs become which tables this run, and their rows, documents and change detection.

Sheets has no updated-time filter, so a run whose window reaches now reads every listed
spreadsheet whole (a full refresh: the loader hashes each row, unchanged rows cost no
document, rows gone from the sheet are soft-deleted) unless Drive's `modifiedTime` equals the
one the last run of the partition recorded (the run's cursor): an unchanged spreadsheet costs
one Drive call and no Sheets call, and its tables are left as they are. A run of past days
only reads nothing: a sheet has no history. Each spreadsheet's ranges come in one batchGet.

A tab removed from a spreadsheet, or a spreadsheet deleted (trashed, or unknown to Drive),
leaves tables no run reads again. So a run that reads or loses a spreadsheet asks the
warehouse which (spreadsheet, tab) pairs each stored table's live rows of the connection come
from, and a table whose pairs all belong to vanished tabs or gone spreadsheets is answered
empty: the loader's full refresh then soft-deletes its rows and tombstones their documents.
The warehouse, not the partition's cursor, remembers the tabs: a cursor starts empty each day.
A spreadsheet Drive does not know that never had rows is a configuration error, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sync_pipelines.documents import Document
from sync_pipelines.sources.google_sheets.client import SOURCE, NotFound, SheetsClient
from sync_pipelines.sources.google_sheets.headers import (
    ROW_COL,
    SHEET_COL,
    SPREADSHEET_COL,
    header_names,
    row_records,
    snake,
)
from sync_pipelines.sources.google_sheets.reader import BookReader, Span, span_of
from sync_pipelines.warehouse.crm import CrmOptions
from sync_pipelines.warehouse.destination import ident
from sync_pipelines.warehouse.tables import CrmRun, Record, Table


class SpreadsheetSpec(BaseModel):
    """One spreadsheet of a connection: its id, the A1 ranges to read (none: every tab) and
    a prefix for its table names (two spreadsheets with a tab of the same name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    ranges: tuple[str, ...] = ()
    prefix: str = ""


class GoogleSheetsOptions(CrmOptions):
    """spreadsheets: what to read. index_tabs: tables (or tab titles) whose rows become
    documents. key_columns: table -> columns identifying a row (default: its row number).
    access: who may read the documents. value_render/date_time_render: the API's options.
    rows_per_call: rows of each tab per batchGet (Sheets advises answers under 2 MB).
    subject: the Workspace user a delegated service account acts as. token_uri: the OAuth
    endpoint (tests)."""

    spreadsheets: tuple[SpreadsheetSpec, ...] = Field(min_length=1)
    index_tabs: tuple[str, ...] = ()
    key_columns: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    access: Literal["all"] | tuple[str, ...] = "all"
    value_render: Literal["UNFORMATTED_VALUE", "FORMATTED_VALUE"] = "UNFORMATTED_VALUE"
    date_time_render: Literal["FORMATTED_STRING", "SERIAL_NUMBER"] = "FORMATTED_STRING"
    rows_per_call: int = Field(default=10_000, ge=1, le=100_000)
    subject: str | None = None
    token_uri: str | None = None

    @field_validator("index_tabs")
    @classmethod
    def _names(cls, tabs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(snake(t) for t in tabs)


@dataclass
class Tab:
    """One range of a spreadsheet, loaded as one table."""

    book: Book
    range: str
    table: str
    title: str
    span: Span
    headers: dict[str, str] = field(default_factory=dict)  # column -> header as typed


@dataclass
class Book:
    spreadsheet_id: str
    modified: str
    title: str = ""
    sheet_ids: dict[str, int] = field(default_factory=dict)
    tabs: list[Tab] = field(default_factory=list)
    reader: BookReader | None = None


Stored = Callable[[], dict[str, set[tuple[str, str, bool]]]]


def stored_tabs(warehouse, connection: str) -> dict[str, set[tuple[str, str, bool]]]:
    """{table: {(spreadsheet id, tab, live)}} of the connection's rows in the warehouse's
    google_sheets tables (`live`: some of them are not soft-deleted)."""
    found: dict[str, set[tuple[str, str, bool]]] = {}
    for table in warehouse.tables(SOURCE):
        rows = warehouse.query(
            SOURCE,
            f"SELECT {SPREADSHEET_COL} AS book, {SHEET_COL} AS tab, "
            f"MAX(CASE WHEN _deleted_at IS NULL THEN 1 ELSE 0 END) AS live "
            f"FROM {SOURCE}.{ident(table)} WHERE _connection_id = %s GROUP BY 1, 2",
            (connection,),
        )
        found[table] = {(str(r["book"]), str(r["tab"]), bool(r["live"])) for r in rows}
    return found


class SheetsPlan:
    """One run's plan: the cursor it started from, what it reads, what it records."""

    def __init__(self, client: SheetsClient, options: GoogleSheetsOptions, connection: str,
                 cursor: str | None):  # fmt: skip
        self.client, self.options, self.connection = client, options, connection
        self.before = parse_cursor(cursor)
        self.after = dict(self.before)
        self.skipped = self.read = self.duplicates = 0
        self.books: list[Book] = []
        self.gone: dict[str, str] = {}  # spreadsheet trashed or unknown to Drive -> why
        self.vanished: list[str] = []  # stored tables answered empty (their tab is gone)

    def cursor(self) -> str:
        return json.dumps(self.after, sort_keys=True)

    def figures(self) -> dict[str, int]:
        return {"spreadsheets_read": self.read, "spreadsheets_unchanged": self.skipped,
                "spreadsheets_gone": len(self.gone), "tables_vanished": len(self.vanished),
                "duplicate_keys_dropped": self.duplicates,
                "batch_get_calls": sum(b.reader.calls for b in self.books)}  # fmt: skip

    def prepare(self, window_end: float, now: float, stored: Stored | None = None) -> bool:
        """Decide what this run reads (Drive calls only); False when nothing: a window of
        past days only (a sheet has no history) or every spreadsheet unchanged. `stored`
        answers {table: {(spreadsheet id, tab, live)}} of the connection's stored rows, to
        find the tables of vanished tabs and gone spreadsheets (none found without it)."""
        if window_end <= now:
            return False
        for spec in self.options.spreadsheets:
            try:
                modified, why = self.client.modified_time(spec.id), "in the trash"
            except NotFound as exc:
                if stored is None:
                    raise
                modified, why = None, str(exc)
            if modified is None:  # trashed, or unknown to Drive: its tables are gone
                self.gone[spec.id] = why
                self.after.pop(spec.id, None)
                continue
            self.after[spec.id] = modified
            if self.before.get(spec.id) == modified:
                self.skipped += 1
                continue
            self.books.append(self._book(spec, modified))
        self.chosen: dict[str, Tab] = {}
        for tab in (t for b in self.books for t in b.tabs):
            if tab.table in self.chosen:
                raise ValueError(
                    f"{SOURCE} connection '{self.connection}': ranges "
                    f"{self.chosen[tab.table].range!r} and {tab.range!r} both make table "
                    f"'{tab.table}'; give one spreadsheet a prefix or list each tab once"
                )
            self.chosen[tab.table] = tab
        if stored is not None and (self.books or self.gone):
            self._find_vanished(stored())
        return bool(self.chosen or self.vanished)

    def _find_vanished(self, stored: dict[str, set[tuple[str, str, bool]]]) -> None:
        """Stored tables whose live rows all come from tabs that no longer exist."""
        tabs_now = {b.spreadsheet_id: set(b.sheet_ids) for b in self.books}
        unknown = set(self.gone) - {sid for found in stored.values() for sid, _, _ in found}
        if unknown:  # never loaded: a wrong id or a missing share, not a deletion
            raise NotFound(
                "; ".join(f"spreadsheet {sid}: {self.gone[sid]}" for sid in sorted(unknown))
                + " (never loaded: check the id and that it is shared with the service account)"
            )
        for table, found in sorted(stored.items()):
            pairs = {(sid, tab) for sid, tab, live in found if live}
            if table in self.chosen or not pairs:
                continue
            if all(sid in self.gone or (sid in tabs_now and tab not in tabs_now[sid])
                   for sid, tab in pairs):  # fmt: skip
                self.vanished.append(table)

    def tables(self, crm: CrmRun) -> list[Table]:
        """The tables of the spreadsheets `prepare` chose (no call until their pages), and
        the vanished ones, empty: the loader's full refresh soft-deletes their rows."""
        read = [self._table(tab) for tab in getattr(self, "chosen", {}).values()]
        return read + [self._vanished(name) for name in self.vanished]

    def _vanished(self, name: str) -> Table:
        keys = self.options.key_columns.get(name)
        return Table(
            name=name,
            primary_key=tuple(keys) if keys else (SPREADSHEET_COL, ROW_COL),
            pages=lambda crm: iter(()),
            full_refresh=True,
        )

    def _book(self, spec: SpreadsheetSpec, modified: str) -> Book:
        """The spreadsheet's tabs (spreadsheets.get: titles, ids, grid sizes) as spans."""
        meta = self.client.spreadsheet(spec.id)
        book = Book(spec.id, modified, meta["title"])
        grid = {s.get("title", ""): s for s in meta["sheets"]}
        book.sheet_ids = {title: s.get("sheetId", 0) for title, s in grid.items()}
        for a1 in spec.ranges or [quote_tab(t) for t in grid]:
            title = tab_of(a1)
            if title not in grid:
                raise ValueError(
                    f"{SOURCE} connection '{self.connection}': spreadsheet {spec.id} has no "
                    f"tab {title!r} (range {a1!r}); its tabs: {', '.join(grid) or 'none'}"
                )
            rows = int((grid[title].get("gridProperties") or {}).get("rowCount") or 1)
            try:
                span = span_of(a1, rows)
            except ValueError as exc:
                raise ValueError(f"{SOURCE} connection '{self.connection}': {exc}") from None
            table = spec.prefix + (snake(title) or "sheet")
            book.tabs.append(Tab(book, a1, table, title, span))
        options = self.options
        book.reader = BookReader(self.client, spec.id, [t.span for t in book.tabs],
                                 options.rows_per_call, options.value_render,
                                 options.date_time_render)  # fmt: skip
        self.read += 1
        return book

    def _table(self, tab: Tab) -> Table:
        keys = self.options.key_columns.get(tab.table)
        indexed = tab.table in self.options.index_tabs
        return Table(
            name=tab.table,
            primary_key=tuple(keys) if keys else (SPREADSHEET_COL, ROW_COL),
            pages=lambda crm: self._pages(tab, crm, keys),
            document=(lambda record, crm: self._document(tab, record)) if indexed else None,
            full_refresh=True,
        )

    def _pages(self, tab: Tab, crm: CrmRun, keys: tuple[str, ...] | None) -> Iterator[list]:
        book, header, names = tab.book, None, []
        seen: set[tuple] = set()
        page: list[Record] = []
        for first_row, rows in book.reader.windows(tab.span):
            if header is None:  # the range's first row names the columns
                header, rows, first_row = (rows[0] if rows else []), rows[1:], first_row + 1
                names = self._names(tab, header, rows, keys)
            width = max((len(r) for r in rows), default=0)
            if width > len(names):  # cells right of the header: named by their column
                names = self._names(tab, header, rows, keys)
            for record in row_records(names, rows, first_row, book.spreadsheet_id, tab.title):
                if keys:  # rows moving up or down are no change: the key says which row
                    key = tuple(record.get(k) for k in keys)
                    if None in key or key in seen:
                        self.duplicates += 1
                        continue
                    seen.add(key)
                    record.pop(ROW_COL)
                page.append(record)
                if len(page) >= crm.page_size:
                    yield page
                    page = []
        if page:
            yield page

    def _names(self, tab: Tab, header: list, rows: list[list], keys) -> list[str]:
        width = max([len(header), len(tab.headers), *(len(r) for r in rows)])
        names, shown = header_names(header, width)
        tab.headers = dict(zip(names, shown))
        missing = [k for k in keys or () if k not in names]
        if missing:
            raise ValueError(
                f"{SOURCE} connection '{self.connection}': key_columns {missing} are not "
                f"columns of table '{tab.table}' (columns: {', '.join(names)})"
            )
        return names

    def _document(self, tab: Tab, record: Record) -> Document:
        book = tab.book
        keys = self.options.key_columns.get(tab.table) or (SPREADSHEET_COL, ROW_COL)
        native = ":".join([book.spreadsheet_id, tab.table,
                           *(str(record[k]) for k in keys if k != SPREADSHEET_COL)])  # fmt: skip
        lines = [f"{tab.headers.get(k, k)}: {v}" for k, v in record.items()
                 if not k.startswith("_") and v is not None]  # fmt: skip
        first = next((str(v) for k, v in record.items() if not k.startswith("_") and v), "")
        sheet = tab.title
        gid = book.sheet_ids.get(sheet, 0)
        modified = _epoch(book.modified)
        access = ("all",) if self.options.access == "all" else tuple(self.options.access)
        return Document(
            doc_id=Document.make_id(SOURCE, self.connection, native),
            source=SOURCE,
            connection=self.connection,
            title=f"{book.title or book.spreadsheet_id} / {sheet}: {first}"[:300],
            text="\n".join(lines),
            url=f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit#gid={gid}"
            + (f"&range=A{record[ROW_COL]}" if ROW_COL in record else ""),
            author="",
            created_at=book.modified,
            updated_at=book.modified,
            timestamp_epoch=modified,
            access=access,
            metadata={
                "spreadsheet_id": book.spreadsheet_id,
                "sheet": sheet,
                "table": tab.table,
                **({"row": int(record[ROW_COL])} if ROW_COL in record else {}),
            },
        )


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """{spreadsheet id: modifiedTime} the last run recorded; {} for none or a bad one."""
    try:
        found = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def tab_of(a1: str) -> str:
    """The tab an A1 range names ("'My tab'!A1:C" -> "My tab")."""
    text = a1.rsplit("!", 1)[0] if "!" in a1 else a1
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def quote_tab(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _epoch(rfc3339: str) -> float:
    try:
        return datetime.fromisoformat(rfc3339).timestamp()
    except ValueError:
        return 0.0
