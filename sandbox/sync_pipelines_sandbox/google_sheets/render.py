"""A1 ranges and cell rendering as the Sheets API v4 does them.

`parse_range("'My tab'!A2:C")` -> (tab, first row, last row, first column, last column), open
ends as None; a bare tab name is the whole tab. `render(cell, value_option, date_option)`
follows `valueRenderOption` (FORMATTED_VALUE: every cell a string as displayed;
UNFORMATTED_VALUE and FORMULA: numbers and booleans typed) and `dateTimeRenderOption`
(SERIAL_NUMBER: a date as days since 1899-12-30; FORMATTED_STRING: as displayed; ignored
with FORMATTED_VALUE). Empty trailing cells and rows are left out of a range's `values`.
"""

from __future__ import annotations

import re

from sync_pipelines_sandbox.google_sheets.data import Day
from sync_pipelines_sandbox.paged import ApiError

VALUE_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
DATE_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


def column_letters(n: int) -> str:
    """1 -> A, 27 -> AA."""
    out = ""
    while n:
        n, rest = divmod(n - 1, 26)
        out = chr(65 + rest) + out
    return out


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


def quote_tab(title: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_]+", title):
        return title
    return "'" + title.replace("'", "''") + "'"


def parse_range(text: str) -> tuple[str, int | None, int | None, int | None, int | None]:
    """(tab, row_lo, row_hi, col_lo, col_hi), 1-based, None where the range is open."""
    if text.startswith("'"):
        end = text.find("'", 1)
        while end != -1 and text[end : end + 2] == "''":
            end = text.find("'", end + 2)
        if end == -1:
            raise ApiError(400, f"Unable to parse range: {text}")
        tab, rest = text[1:end].replace("''", "'"), text[end + 1 :]
    else:
        tab, _, cells = text.partition("!")
        rest = f"!{cells}" if cells else ""
    if not rest:
        return tab, None, None, None, None
    if not rest.startswith("!"):
        raise ApiError(400, f"Unable to parse range: {text}")
    first, _, last = rest[1:].partition(":")
    a, b = _CELL.match(first), _CELL.match(last or first)
    if not a or not b or not (first and (a.group(1) or a.group(2))):
        raise ApiError(400, f"Unable to parse range: {text}")
    col_lo = _column_number(a.group(1)) if a.group(1) else None
    row_lo = int(a.group(2)) if a.group(2) else None
    col_hi = _column_number(b.group(1)) if b.group(1) else None
    row_hi = int(b.group(2)) if b.group(2) else None
    if not last and col_lo is None:  # "Tab!5" is not a range; "Tab!5:5" is
        raise ApiError(400, f"Unable to parse range: {text}")
    return tab, row_lo, row_hi, col_lo, col_hi


def _number_text(value: float, fmt: str | None) -> str:
    if fmt == "currency":
        return f"${value:,.2f}"
    if fmt == "percent":
        return f"{value * 100:.2f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def render(cell, fmt: str | None, value_option: str, date_option: str):
    if cell is None or cell == "":
        return ""
    if isinstance(cell, Day):
        if value_option != "FORMATTED_VALUE" and date_option == "SERIAL_NUMBER":
            return cell.serial
        return cell.formatted()
    if value_option == "FORMATTED_VALUE":
        if isinstance(cell, bool):
            return "TRUE" if cell else "FALSE"
        if isinstance(cell, (int, float)):
            return _number_text(cell, fmt)
    return cell


def trimmed(rows: list[list]) -> list[list]:
    """Rows without their empty trailing cells, and no empty trailing rows."""
    out = []
    for row in rows:
        end = len(row)
        while end and row[end - 1] == "":
            end -= 1
        out.append(row[:end])
    while out and not out[-1]:
        out.pop()
    return out
