"""A spreadsheet's ranges read in row windows, every tab of a window in one batchGet.

Sheets has no paging and recommends answers under 2 MB, so a tab is read `rows_per_call` rows
at a time (the grid's row count, from spreadsheets.get, says where it ends: rows left blank
in the middle of a sheet never end it early). Each call asks for the next window of the tab
being read and of every other tab that has nothing waiting, so a spreadsheet that fits in one
window costs one call for all its tabs, and memory holds at most one window per tab however
the loader interleaves the tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sync_pipelines.sources.google_sheets.client import SheetsClient

_CELL = re.compile(r"^\$?([A-Za-z]*)\$?(\d*)$")


@dataclass
class Span:
    """One range of a tab: its columns (letters, "" for open) and rows [row_lo, row_hi]."""

    quoted: str  # the tab as A1 names it: 'My tab'
    col_lo: str
    col_hi: str
    row_lo: int
    row_hi: int
    next_row: int = 0
    waiting: list[tuple[int, list[list[Any]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.next_row = self.next_row or self.row_lo

    @property
    def done(self) -> bool:
        return self.next_row > self.row_hi

    def window(self, rows: int) -> tuple[str, int, int]:
        last = min(self.row_hi, self.next_row + rows - 1)
        return (
            f"{self.quoted}!{self.col_lo}{self.next_row}:{self.col_hi}{last}",
            self.next_row,
            last,
        )


def span_of(a1: str, row_count: int) -> Span:
    """The span of a configured range ("Leads", "'My tab'!B3:F", "Leads!2:500") on a tab of
    `row_count` rows; ValueError when it is not an A1 range."""
    quoted, _, cells = a1.rpartition("!") if "!" in a1 else (a1, "", "")
    if not quoted.startswith("'"):
        quoted = "'" + quoted.replace("'", "''") + "'"
    if not cells:
        return Span(quoted, "", "", 1, max(1, row_count))
    first, _, last = cells.partition(":")
    a, b = _CELL.match(first), _CELL.match(last or first)
    if not a or not b or not first:
        raise ValueError(f"'{a1}' is not an A1 range")
    col_lo, col_hi = a.group(1).upper(), b.group(1).upper()
    if bool(col_lo) != bool(col_hi):  # "A1:5" is not a range Sheets reads
        raise ValueError(f"'{a1}' is not an A1 range")
    row_lo = int(a.group(2)) if a.group(2) else 1
    row_hi = min(int(b.group(2)), row_count) if b.group(2) else row_count
    return Span(quoted, col_lo, col_hi, row_lo, max(row_lo, row_hi))


class BookReader:
    """Row windows of one spreadsheet's spans (module docstring); `calls` counts batchGets."""

    def __init__(self, client: SheetsClient, spreadsheet_id: str, spans: list[Span],
                 rows_per_call: int, value_render: str, date_render: str):  # fmt: skip
        self.client, self.spreadsheet_id, self.spans = client, spreadsheet_id, spans
        self.rows_per_call = rows_per_call
        self.render = (value_render, date_render)
        self.calls = 0

    def windows(self, span: Span) -> Iterator[tuple[int, list[list[Any]]]]:
        """(first row, rows) of each window of `span`, in order."""
        while True:
            if not span.waiting:
                if span.done:
                    return
                self._fetch(span)
            yield span.waiting.pop(0)

    def _fetch(self, wanted: Span) -> None:
        group = [s for s in self.spans if s is wanted or (not s.waiting and not s.done)]
        asked = [s.window(self.rows_per_call) for s in group]
        answered = self.client.batch_get(self.spreadsheet_id, [a for a, _, _ in asked],
                                         *self.render)  # fmt: skip
        self.calls += 1
        for span, (_, first, last), value_range in zip(group, asked, answered):
            span.waiting.append((first, value_range.get("values") or []))
            span.next_row = last + 1
