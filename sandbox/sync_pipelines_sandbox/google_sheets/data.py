"""The company's spreadsheets, derived from the CRM world: what the Sheets emulator serves.

"Sales pipeline" holds a `Leads` tab (the world's contacts) and a `Pipeline` tab (its deals:
amounts as currency, close dates as dates, a won checkbox); "Legacy accounts import" holds one
tab with the headers people really type (duplicates, blanks, spaces, accents, symbols). Cells
are typed (str, int/float, bool, `Day` for a date) and rendered per request (api.py). Every
spreadsheet is shared with the sandbox service account; mutations (`edit_cell`, `delete_row`,
`append_row`, `delete_tab`) bump the spreadsheet's Drive `modifiedTime` as Google does;
`delete_spreadsheet` moves one to the trash (Drive shows `trashed: true`) or, permanently,
removes it (Drive and Sheets answer 404).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.google_oauth import SERVICE_ACCOUNT_EMAIL

SALES_ID = "1SbxSa1esPipe1ine0000000000000000000000000A"
LEGACY_ID = "1SbxLegacyAccountsImport00000000000000000B"
PRIVATE_ID = "1SbxPrivateSa1aries0000000000000000000000C"  # not shared with the account
EPOCH_DAY0 = datetime(1899, 12, 30, tzinfo=UTC)  # Sheets' serial number 0
MESSY_HEADER = ("Account Name", "account name", "", " Région / Ville ", "Industry ",
                "Industry", "Nº employees", "CA (€)", "")  # fmt: skip


@dataclass(frozen=True)
class Day:
    """A date cell: days since Sheets' epoch (1899-12-30), shown as yyyy-mm-dd."""

    serial: int

    @classmethod
    def of_epoch(cls, epoch: float) -> Day:
        return cls(int((epoch - EPOCH_DAY0.timestamp()) // 86_400))

    def formatted(self) -> str:
        return datetime.fromtimestamp(EPOCH_DAY0.timestamp() + self.serial * 86_400, UTC).strftime(
            "%Y-%m-%d"
        )


@dataclass
class Sheet:
    """One tab: rows of cells (row 1 is the header); `formats` per column: "currency",
    "percent" or None."""

    sheet_id: int
    title: str
    rows: list[list]
    formats: dict[int, str] = field(default_factory=dict)

    @property
    def row_count(self) -> int:  # the grid is larger than the data, as in a real sheet
        return max(1000, len(self.rows) + 100)

    @property
    def column_count(self) -> int:
        return max(26, max((len(r) for r in self.rows), default=0))


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[Sheet]
    modified: float  # epoch seconds (Drive modifiedTime)
    shared_with: set[str]
    trashed: bool = False

    def sheet(self, title: str) -> Sheet | None:
        return next((s for s in self.sheets if s.title == title), None)


class SheetsData:
    _cache: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()
    _cache_lock = threading.Lock()

    def __init__(self, company: Company):
        self.company = company
        self.world = CrmWorld.of(company)
        self.lock = threading.RLock()
        start, _ = company.span()
        owner = next(p.email for p in company.people if not p.is_bot)
        shared = {SERVICE_ACCOUNT_EMAIL, owner}
        self.spreadsheets = {
            SALES_ID: Spreadsheet(
                SALES_ID, "Sales pipeline", [self._leads(), self._pipeline()], start, shared
            ),
            LEGACY_ID: Spreadsheet(
                LEGACY_ID, "Legacy accounts import", [self._legacy()], start - 86_400, shared
            ),
            PRIVATE_ID: Spreadsheet(
                PRIVATE_ID,
                "Salaries (private)",
                [Sheet(0, "Sheet1", [["Name", "Salary"], ["Ana", 1]])],
                start,
                {owner},
            ),
        }

    @classmethod
    def of(cls, company: Company) -> SheetsData:
        with cls._cache_lock:
            data = cls._cache.get(company)
            if data is None:
                data = cls._cache[company] = cls(company)
            return data

    # ----------------------------------------------------------------- tabs from the world
    def _leads(self) -> Sheet:
        rows: list[list] = [["Lead ID", "First name", "Last name", "Email", "Phone", "Company",
                             "Lifecycle stage", "Owner"]]  # fmt: skip
        for c in self.world.all("contacts"):
            f = c.fields
            rows.append([int(c.id), f["first_name"], f["last_name"], f["email"], f["phone"],
                         self.world.account_name(f["account"]), f["lifecycle_stage"],
                         f["owner_email"]])  # fmt: skip
        return Sheet(0, "Leads", rows)

    def _pipeline(self) -> Sheet:
        rows: list[list] = [["Deal ID", "Deal", "Company", "Amount", "Stage", "Close date",
                             "Won?", "Owner"]]  # fmt: skip
        for d in self.world.all("deals"):
            f = d.fields
            rows.append([int(d.id), f["name"], self.world.account_name(f["account"]),
                         f["amount"], f["stage"], Day.of_epoch(f["close_date"]),
                         f["stage"] == "closedwon", f["owner_email"]])  # fmt: skip
        return Sheet(1_234_567, "Pipeline", rows, {3: "currency"})

    def _legacy(self) -> Sheet:
        rows: list[list] = [list(MESSY_HEADER)]
        for a in self.world.all("accounts"):
            f = a.fields
            employees = 10 + (a.i * 37) % 5000
            rows.append([f["name"], f["name"].upper(), f["domain"], f["city"], f["industry"],
                         f["industry"].lower(), employees, round(employees * 1234.5, 2),
                         "" if a.i % 3 else "à rappeler"])  # fmt: skip
        return Sheet(42, "Accounts – raw export", rows, {7: "currency"})

    # ----------------------------------------------------------------- mutations
    def _touch(self, spreadsheet: Spreadsheet) -> None:
        spreadsheet.modified = max(clock.now_epoch(), spreadsheet.modified + 0.001)

    def edit_cell(self, spreadsheet_id: str, tab: str, row: int, column: int, value) -> None:
        """Sets the cell at 1-based (row, column) as a user typing in it would."""
        with self.lock:
            book = self.spreadsheets[spreadsheet_id]
            cells = book.sheet(tab).rows[row - 1]
            cells.extend([""] * (column - len(cells)))
            cells[column - 1] = value
            self._touch(book)

    def delete_row(self, spreadsheet_id: str, tab: str, row: int) -> list:
        """Deletes a 1-based row (the rows below move up); answers its cells."""
        with self.lock:
            book = self.spreadsheets[spreadsheet_id]
            removed = book.sheet(tab).rows.pop(row - 1)
            self._touch(book)
            return removed

    def append_row(self, spreadsheet_id: str, tab: str, cells: list) -> None:
        with self.lock:
            book = self.spreadsheets[spreadsheet_id]
            book.sheet(tab).rows.append(list(cells))
            self._touch(book)

    def delete_tab(self, spreadsheet_id: str, tab: str) -> None:
        """Removes a tab (its rows with it), as a user deleting the sheet would."""
        with self.lock:
            book = self.spreadsheets[spreadsheet_id]
            sheet = book.sheet(tab)
            if sheet is None:
                raise KeyError(f"spreadsheet {spreadsheet_id} has no tab {tab!r}")
            book.sheets.remove(sheet)
            self._touch(book)

    def delete_spreadsheet(self, spreadsheet_id: str, permanently: bool = False) -> None:
        """Moves a spreadsheet to the trash (Drive still answers, with `trashed: true`), or
        deletes it for good (every call about it answers 404)."""
        with self.lock:
            if permanently:
                del self.spreadsheets[spreadsheet_id]
            else:
                book = self.spreadsheets[spreadsheet_id]
                book.trashed = True
                self._touch(book)

    def rows(self, spreadsheet_id: str, tab: str) -> list[list]:
        """The tab's rows, header first (ground truth for tests)."""
        with self.lock:
            return [list(r) for r in self.spreadsheets[spreadsheet_id].sheet(tab).rows]
