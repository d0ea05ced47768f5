"""Header rows and tab titles as warehouse names, and sheet rows as records.

A header cell becomes a lower snake case column name: accents folded to ASCII ("Région" ->
"region"), every run of other characters one "_" ("Nº employees" -> "no_employees", "CA (€)"
-> "ca"), trimmed of "_"; a name starting with a digit gets "col_" in front. A blank header
(or one with nothing left) is named after its column letter ("column_c"); a name already
taken gets "_2", "_3", ... Names never start with "_": those are the loader's and ours
(`_spreadsheet_id`, `_sheet`, `_row`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

SPREADSHEET_COL, SHEET_COL, ROW_COL = "_spreadsheet_id", "_sheet", "_row"
_OTHER = re.compile(r"[^a-z0-9]+")
_START_ROW = re.compile(r"^\$?[A-Za-z]*\$?(\d+)")
_LIGATURES = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l"})


def column_letters(n: int) -> str:
    """1 -> "a", 27 -> "aa" (lower case, for names)."""
    out = ""
    while n:
        n, rest = divmod(n - 1, 26)
        out = chr(97 + rest) + out
    return out


def snake(text: Any) -> str:
    """Lower snake case ASCII of a header or title ("" when nothing is left)."""
    folded = unicodedata.normalize("NFKD", str(text).lower().translate(_LIGATURES))
    ascii_text = "".join(c for c in folded if not unicodedata.combining(c))
    name = _OTHER.sub("_", ascii_text).strip("_")
    return f"col_{name}" if name[:1].isdigit() else name


def column_names(header: Sequence[Any], width: int) -> list[str]:
    """One unique name per column of a `width`-wide range whose first row is `header`."""
    cells = list(header) + [""] * (width - len(header))
    names: list[str] = []
    taken: set[str] = set()
    for i, cell in enumerate(cells, start=1):
        base = snake(cell) if cell is not None else ""
        base = base or f"column_{column_letters(i)}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


def start_row(a1_range: str) -> int:
    """The first row of an answered range ("'Leads'!A1:H1000" -> 1); 1 when it names none."""
    cells = a1_range.rsplit("!", 1)[1] if "!" in a1_range else ""
    found = _START_ROW.match(cells)
    return int(found.group(1)) if found else 1


def header_names(header: Sequence[Any], width: int) -> tuple[list[str], list[str]]:
    """(column names, headers as typed, blanks shown by their name) of `width` columns."""
    names = column_names(header, width)
    typed = list(header) + [""] * (width - len(header))
    shown = [str(h).strip() if h not in (None, "") else n for h, n in zip(typed, names)]
    return names, shown


def row_records(
    names: list[str], rows: list[list[Any]], first_row: int, spreadsheet_id: str, sheet: str
) -> Iterator[dict]:
    """Records of data rows (`first_row` is the sheet row of rows[0]): empty cells None,
    rows with no value at all left out, `_row` the row's number in the sheet."""
    width = len(names)
    for offset, row in enumerate(rows):
        if not any(cell not in (None, "") for cell in row):
            continue
        record: dict[str, Any] = {
            SPREADSHEET_COL: spreadsheet_id,
            SHEET_COL: sheet,
            ROW_COL: first_row + offset,
        }
        for name, cell in zip(names, list(row) + [None] * (width - len(row))):
            record[name] = None if cell == "" else cell
        yield record


def records(
    values: list[list[Any]], first_row: int, spreadsheet_id: str, sheet: str
) -> tuple[list[str], list[str], Iterator[dict]]:
    """(column names, headers as typed, records) of one range whose first row (sheet row
    `first_row`) is the header."""
    header = values[0] if values else []
    width = max((len(r) for r in values), default=0)
    names, shown = header_names(header, width)
    return names, shown, row_records(names, values[1:], first_row + 1, spreadsheet_id, sheet)
