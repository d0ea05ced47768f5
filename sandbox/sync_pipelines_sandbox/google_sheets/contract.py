"""Google Sheets' place in the source contract: the sandbox's two shared spreadsheets, the
Leads and Pipeline tabs indexed (keyed by their id columns), the messy import tab loaded."""

import json

from sync_pipelines import clock
from sync_pipelines.sources.google_sheets.client import GoogleSheetsResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.google_oauth import GOOGLE_TOKEN_AUDIENCE, SANDBOX_KEY
from sync_pipelines_sandbox.google_sheets.data import LEGACY_ID, SALES_ID, SheetsData

INDEXED = {"leads": ("Leads", "lead_id"), "pipeline": ("Pipeline", "deal_id")}


def service_account_json() -> str:
    return json.dumps(SANDBOX_KEY.info(GOOGLE_TOKEN_AUDIENCE))


def doc_id(table: str, key) -> str:
    return f"google_sheets:acme:{SALES_ID}:{table}:{key}"


def expected_ids(company, start, end):
    """Every Leads and Pipeline row, when the range reaches today (a sheet has no history)."""
    now = clock.now_epoch()
    if not start.timestamp() <= now < end.timestamp():
        return set()
    data = SheetsData.of(company)
    return {
        doc_id(table, row[0])
        for table, (tab, _) in INDEXED.items()
        for row in data.rows(SALES_ID, tab)[1:]
    }


def registry_entry(sandbox, conn_id: str, env: str) -> str:
    url = sandbox.urls["google_sheets"]
    return (
        f"  - id: {conn_id}\n    source: google_sheets\n    base_url: {url}\n"
        f"    credentials: {{service_account_json: {env}}}\n"
        f"    options:\n      token_uri: '{url}/token'\n"
        f"      spreadsheets: [{{id: {SALES_ID}}}, {{id: {LEGACY_ID}}}]\n"
        "      index_tabs: [Leads, Pipeline]\n"
        "      key_columns: {leads: [lead_id], pipeline: [deal_id]}\n"
        # Windows of 200 rows: tabs span several batchGets (a 1,000-row grid: 5 per tab).
        "      rows_per_call: 200\n"
    )


def expected_rows(company, start, end) -> dict[str, set[tuple]]:
    """The keys of every table when the range reaches today: Leads and Pipeline by their id
    column, the import tab (no id column) by spreadsheet and row number."""
    now = clock.now_epoch()
    if not start.timestamp() <= now < end.timestamp():
        return {}
    data = SheetsData.of(company)
    legacy = data.rows(LEGACY_ID, "Accounts – raw export")
    return {
        **{table: {(row[0],) for row in data.rows(SALES_ID, tab)[1:]}
           for table, (tab, _) in INDEXED.items()},
        "accounts_raw_export": {
            (LEGACY_ID, n) for n, row in enumerate(legacy, start=1)
            if n > 1 and any(c not in (None, "") for c in row)
        },
    }  # fmt: skip


def edit_record(sandbox) -> tuple[str, tuple]:
    """A user retypes one lead's lifecycle stage (row 5, column G)."""
    data = sandbox.google_sheets.data
    row = data.rows(SALES_ID, "Leads")[4]
    data.edit_cell(SALES_ID, "Leads", 5, 7, f"{row[6]} (checked)")
    return "leads", (row[0],)


def delete_crm_record(sandbox) -> tuple[str, tuple]:
    """A user deletes a row in the middle of the Pipeline tab (the rows below move up)."""
    data = sandbox.google_sheets.data
    row = len(data.rows(SALES_ID, "Pipeline")) // 2
    return "pipeline", (data.delete_row(SALES_ID, "Pipeline", row)[0],)


def delete_record(sandbox) -> str:
    """Deletes a Leads row in the middle of the tab (the rows below move up)."""
    rows = sandbox.google_sheets.data.rows(SALES_ID, "Leads")
    row = len(rows) // 2
    removed = sandbox.google_sheets.data.delete_row(SALES_ID, "Leads", row)
    return doc_id("leads", removed[0])


CONTRACT = SourceContract(
    name="google_sheets",
    asset=source_asset("google_sheets"),
    resources=lambda sandbox: {
        "google_sheets": GoogleSheetsResource(
            base_url=sandbox.urls["google_sheets"], rate_per_s=0, timeout_s=10
        )
    },
    registry_entry=registry_entry,
    good_secret=service_account_json(),
    list_route="values.batchGet",
    expected_ids=expected_ids,
    # Sheets: 60 read requests per minute per user (spreadsheets.get and values.batchGet
    # alike); Drive metadata and the token endpoint have quotas of their own.
    rate_budgets={"*": 1.0, "files.get": 10.0, "sheets.token": 10.0},
    bench_size=(20_000, 1, 200),
    delete_record=delete_record,
    deletion_seen_by="sync",
    expected_rows=expected_rows,
    edit_record=edit_record,
    delete_crm_record=delete_crm_record,
)
