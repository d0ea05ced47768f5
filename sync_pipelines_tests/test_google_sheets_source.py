"""Google Sheets end to end against its emulator: typed values and normalised headers in the
warehouse, one batchGet per spreadsheet, an unchanged spreadsheet skipped by its Drive
modifiedTime with no Sheets call, an edited cell changing exactly one row and one document,
a removed row soft-deleted and tombstoned, a 429 waited out, past days reading nothing, and a
spreadsheet not shared with the account failing fast."""

import json

import pytest
from sync_pipelines_sandbox.google_oauth import GOOGLE_TOKEN_AUDIENCE, SANDBOX_KEY
from sync_pipelines_sandbox.google_sheets.data import LEGACY_ID, PRIVATE_ID, SALES_ID

from sync_pipelines.sources.google_sheets.client import GoogleSheetsResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day

pytestmark = pytest.mark.integration
KEY_ENV = "TEST_SHEETS_SA_KEY"
ASSET = source_asset("google_sheets")


@pytest.fixture
def sheets(harness, sandbox, monkeypatch):
    monkeypatch.setenv(KEY_ENV, json.dumps(SANDBOX_KEY.info(GOOGLE_TOKEN_AUDIENCE)))
    connect(harness, sandbox)
    harness.extra_resources = {
        "google_sheets": GoogleSheetsResource(rate_per_s=0, timeout_s=10, max_attempts=4)
    }
    return harness


def connect(harness, sandbox, books=(SALES_ID, LEGACY_ID), extra: str = "") -> None:
    url = sandbox.urls["google_sheets"]
    listed = ", ".join(f"{{id: {b}}}" for b in books)
    harness.registry.write_text(
        f"connections:\n  - id: acme\n    source: google_sheets\n    base_url: {url}\n"
        f"    credentials: {{service_account_json: {KEY_ENV}}}\n"
        f"    options:\n      token_uri: '{url}/token'\n      spreadsheets: [{listed}]\n"
        "      index_tabs: [Leads]\n      key_columns: {leads: [lead_id]}\n" + extra
    )


def rows(harness, table, key="_row"):
    return {r[key]: r for r in harness.warehouse.rows("google_sheets", table, "acme")}


def truth_lead(sandbox, row: int) -> int:
    return sandbox.google_sheets.data.rows(SALES_ID, "Leads")[row - 1][0]


def test_tabs_load_as_tables_with_typed_values_and_clean_names(sheets, sandbox):
    result = sheets.sync(ASSET, [day(0)])
    assert sheets.warehouse.tables("google_sheets") == [
        "accounts_raw_export", "leads", "pipeline"
    ]  # fmt: skip
    truth = sandbox.google_sheets.data.rows(SALES_ID, "Pipeline")
    pipeline = rows(sheets, "pipeline")
    assert len(pipeline) == len(truth) - 1
    second = pipeline[2]
    assert second["deal_id"] == truth[1][0] and isinstance(second["deal_id"], int)
    assert second["amount"] == pytest.approx(truth[1][3]) and isinstance(second["amount"], float)
    assert second["close_date"] == truth[1][5].formatted()  # as displayed: yyyy-mm-dd
    assert second["won"] is (truth[1][4] == "closedwon")
    messy = rows(sheets, "accounts_raw_export")[2]
    for column in ("account_name", "account_name_2", "column_c", "region_ville", "industry",
                   "industry_2", "no_employees", "ca"):  # fmt: skip
        assert column in messy
    assert messy["_sheet"] == "Accounts – raw export" and messy["_spreadsheet_id"] == LEGACY_ID
    # Only the indexed tab makes documents: one per lead, "header: value" lines.
    documents = sheets.documents(result, "google_sheets")
    leads = rows(sheets, "leads", "lead_id")
    assert len(documents) == len(leads) and "_row" not in leads[truth_lead(sandbox, 2)]
    lead = next(d for d in documents if d.doc_id.endswith(f":leads:{truth_lead(sandbox, 2)}"))
    assert "Email: " in lead.text and "Lifecycle stage: " in lead.text and lead.access == ("all",)
    assert sandbox.knobs.calls["values.batchGet"] == 2  # one per spreadsheet, every tab in it
    assert sandbox.knobs.calls["values.get"] == 0


def test_an_unchanged_spreadsheet_costs_one_drive_call_and_no_sheets_call(sheets, sandbox):
    sheets.sync(ASSET, [day(0)])
    knobs = sandbox.knobs
    before = dict(knobs.calls)
    again = sheets.sync(ASSET, [day(0)])
    assert knobs.calls["values.batchGet"] == before["values.batchGet"]
    assert knobs.calls["spreadsheets.get"] == before["spreadsheets.get"]
    assert knobs.calls["files.get"] == before["files.get"] + 2
    meta = sheets.metadata(again, "google_sheets")
    assert meta["run_spreadsheets_unchanged"] == 2 and meta["documents_written"] == 0
    assert (
        len(rows(sheets, "leads", "lead_id"))
        == len(sandbox.google_sheets.data.rows(SALES_ID, "Leads")) - 1
    )


def test_an_edited_cell_changes_one_row_and_one_document(sheets, sandbox):
    sheets.sync(ASSET, [day(0)])
    before = rows(sheets, "leads", "lead_id")
    data = sandbox.google_sheets.data
    data.edit_cell(SALES_ID, "Leads", 5, 7, "customer-of-the-year")  # row 5, "Lifecycle stage"
    result = sheets.sync(ASSET, [day(0)])
    after = rows(sheets, "leads", "lead_id")
    assert len(after) == len(before)
    changed = [k for k in after if after[k]["_row_hash"] != before[k]["_row_hash"]]
    edited = truth_lead(sandbox, 5)
    assert changed == [edited] and after[edited]["lifecycle_stage"] == "customer-of-the-year"
    (document,) = sheets.documents(result, "google_sheets")
    assert "Lifecycle stage: customer-of-the-year" in document.text
    meta = sheets.metadata(result, "google_sheets")
    assert meta["run_spreadsheets_read"] == 1 and meta["run_spreadsheets_unchanged"] == 1


def test_a_removed_row_is_soft_deleted_and_tombstoned(sheets, sandbox):
    sheets.sync(ASSET, [day(0)])
    data = sandbox.google_sheets.data
    removed = data.delete_row(SALES_ID, "Leads", 4)  # the rows below move up
    result = sheets.sync(ASSET, [day(0)])
    by_key = {r["lead_id"]: r for r in sheets.warehouse.rows("google_sheets", "leads", "acme")}
    assert by_key[removed[0]]["_deleted_at"] is not None
    assert [k for k, r in by_key.items() if r["_deleted_at"] is not None] == [removed[0]]
    meta = sheets.metadata(result, "google_sheets")
    assert meta["run_rows_deleted_leads"] == 1
    # Keyed by lead_id, the rows that moved up are not changes: no document for them.
    assert meta["documents_written"] == 0 and meta["tombstones_written"] == 1


def test_a_429_is_waited_out(sheets, sandbox):
    sandbox.knobs.inject("values.batchGet", "429", count=1, retry_after=1)
    result = sheets.sync(ASSET, [day(0)])
    meta = sheets.metadata(result, "google_sheets")
    assert meta["run_rate_limited_429"] == 1
    assert len(rows(sheets, "pipeline")) > 0


def test_past_days_read_nothing(sheets, sandbox):
    result = sheets.sync(ASSET, [day(-3), day(-1)])
    assert result.success and sum(sandbox.knobs.calls.values()) == 0
    assert sheets.warehouse.tables("google_sheets") == []


def test_a_spreadsheet_not_shared_with_the_account_fails_fast(sheets, sandbox):
    connect(sheets, sandbox, books=(SALES_ID, PRIVATE_ID))
    result = sheets.sync(ASSET, [day(0)], raise_on_error=False)
    assert not result.success
    assert sandbox.knobs.calls["files.get"] == 2  # Drive answers 404: not retried
    assert sandbox.knobs.calls["values.batchGet"] == 0  # nothing loaded before the failure


def test_formatted_values_and_serial_dates_are_options(sheets, sandbox):
    connect(sheets, sandbox, books=(SALES_ID,),
            extra="      value_render: FORMATTED_VALUE\n")  # fmt: skip
    sheets.sync(ASSET, [day(0)])
    second = rows(sheets, "pipeline")[2]
    assert second["amount"].startswith("$") and second["won"] in ("TRUE", "FALSE")
    assert isinstance(second["deal_id"], str)


def test_big_tabs_are_read_in_row_windows_with_every_row_once(sheets, sandbox):
    connect(sheets, sandbox, books=(SALES_ID,), extra="      rows_per_call: 400\n")
    result = sheets.sync(ASSET, [day(0)])
    data = sandbox.google_sheets.data
    leads = rows(sheets, "leads", "lead_id")
    assert set(leads) == {r[0] for r in data.rows(SALES_ID, "Leads")[1:]}
    pipeline = rows(sheets, "pipeline")
    assert sorted(pipeline) == list(range(2, len(data.rows(SALES_ID, "Pipeline")) + 1))
    # A 1,000-row grid in windows of 400 rows: 3 windows per tab, both tabs in a call
    # whenever neither has a window waiting.
    calls = sandbox.knobs.calls["values.batchGet"]
    assert 3 <= calls <= 6
    assert sheets.metadata(result, "google_sheets")["run_batch_get_calls"] == calls


def _tombstones(sheets, result) -> set[str]:
    from sync_pipelines.documents import DocumentFiles

    paths = sheets.metadata(result, "google_sheets")["documents_files"]
    return {t.doc_id for p in paths for t in DocumentFiles.read_tombstones(p)}


def test_a_deleted_tab_soft_deletes_its_table_and_tombstones_its_documents(sheets, sandbox):
    sheets.sync(ASSET, [day(0)])
    leads = rows(sheets, "leads", "lead_id")
    sandbox.google_sheets.data.delete_tab(SALES_ID, "Leads")
    result = sheets.sync(ASSET, [day(0)])
    meta = sheets.metadata(result, "google_sheets")
    assert meta["run_tables_vanished"] == 1 and meta["run_rows_deleted_leads"] == len(leads)
    after = rows(sheets, "leads", "lead_id")
    assert after.keys() == leads.keys() and all(r["_deleted_at"] for r in after.values())
    assert _tombstones(sheets, result) == {r["_doc_id"] for r in leads.values()}
    assert all(r["_deleted_at"] is None for r in rows(sheets, "pipeline").values())
    assert all(r["_deleted_at"] is None for r in rows(sheets, "accounts_raw_export").values())
    again = sheets.metadata(sheets.sync(ASSET, [day(0)]), "google_sheets")
    assert again.get("run_tables_vanished", 0) == 0  # unchanged spreadsheets: nothing read again


@pytest.mark.parametrize("permanently", [False, True], ids=["trashed", "deleted"])
def test_a_deleted_spreadsheet_soft_deletes_every_table_of_it(sheets, sandbox, permanently):
    sheets.sync(ASSET, [day(0)])
    sandbox.google_sheets.data.delete_spreadsheet(SALES_ID, permanently=permanently)
    result = sheets.sync(ASSET, [day(0)])
    meta = sheets.metadata(result, "google_sheets")
    assert meta["run_spreadsheets_gone"] == 1 and meta["run_tables_vanished"] == 2
    for table, key in (("leads", "lead_id"), ("pipeline", "_row")):
        assert all(r["_deleted_at"] for r in rows(sheets, table, key).values()), table
    assert all(r["_deleted_at"] is None for r in rows(sheets, "accounts_raw_export").values())
    assert len(_tombstones(sheets, result)) == len(rows(sheets, "leads", "lead_id"))
    assert sandbox.knobs.calls["values.batchGet"] == 2  # the first run's two; none since
    again = sheets.metadata(sheets.sync(ASSET, [day(0)]), "google_sheets")  # still gone: no error
    assert again["run_spreadsheets_gone"] == 1 and again.get("run_tables_vanished", 0) == 0
