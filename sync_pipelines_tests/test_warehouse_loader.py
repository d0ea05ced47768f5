"""The shared CRM loader end to end on a throw-away CRM source: rows land merged on the
connection and key, documents and tombstones are teed from the same records, a failed page
loads nothing, full-refresh tables detect changes by hash and soft-delete what vanished only
after a complete read, and the figures the UI plots are reported."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from sync_pipelines.documents import DocumentFiles
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines.warehouse.destination import WarehouseResource
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_postgres_storage import ADMIN_DSN
from sync_pipelines_tests.test_tombstones_end_to_end import install_source, remove_source

pytestmark = pytest.mark.integration

WIDGETS = '''
"""A throw-away CRM source whose records the test scripts in STATE."""

from sync_pipelines.documents import Document
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.resource import SourceResourceBase
from sync_pipelines.warehouse.crm import CrmOptions, crm_sync
from sync_pipelines.warehouse.tables import Table

# accounts: id -> record (incremental on "updated"); rows: the sheet (full refresh)
STATE = {"accounts": {}, "sheet": {}, "fail_after_pages": None, "page_sizes": []}


class WidgetsResource(SourceResourceBase):
    ENV_PREFIX = "WIDGETS"
    DEFAULT_BASE_URL = "https://api.widgets.test"

    def client_for(self, connection):
        return self.http_client(connection)


def _paged(records, run):
    STATE["page_sizes"].append(run.page_size)
    records = sorted(records, key=lambda r: str(r["id"]))
    for n, start in enumerate(range(0, len(records), run.page_size)):
        if STATE["fail_after_pages"] is not None and n >= STATE["fail_after_pages"]:
            raise ValueError("widgets: page refused (400)")  # permanent: no retry
        yield records[start : start + run.page_size]


def account_pages(run):
    chosen = [r for r in STATE["accounts"].values() if run.lower <= r["updated"] < run.upper]
    return _paged(chosen, run)


def account_document(record, run):
    if not record.get("notes"):
        return None
    return Document(
        doc_id=Document.make_id("widgets", run.connection_id, f"account-{record['id']}"),
        source="widgets", connection=run.connection_id, title=record["name"],
        text=record["notes"], url="", author="", created_at="", updated_at="",
        timestamp_epoch=record["updated"],
    )


def sheet_document(record, run):
    return Document(
        doc_id=Document.make_id("widgets", run.connection_id, f"row-{record['id']}"),
        source="widgets", connection=run.connection_id, title=f"row {record['id']}",
        text=str(record), url="", author="", created_at="", updated_at="",
        timestamp_epoch=run.upper - 1,
    )


TABLES = [
    Table(
        "accounts", ("id",), account_pages, account_document,
        is_deleted=lambda r: bool(r.get("archived")), updated_at=lambda r: r["updated"],
    ),
    Table(
        "sheet_rows", ("id",), lambda run: _paged(list(STATE["sheet"].values()), run),
        sheet_document, full_refresh=True,
    ),
]


class WidgetsOptions(CrmOptions):
    pass


SOURCE = SourceDeclaration(
    name="widgets",
    resource=WidgetsResource,
    sync=crm_sync(TABLES, overlap_s=0),
    options=WidgetsOptions,
    group="crm",
    description="Widgets of a throw-away CRM.",
    schedule=Cadence(every_minutes=60, at_minute=13, stale_after_minutes=120),
    credentials_env={"token": "WIDGETS_TOKEN"},
    docs_url="https://docs.widgets.test/",
)
'''


@pytest.fixture
def wh_database():
    """A database of our own on the machine's PostgreSQL, dropped after."""
    name = f"sync_wh_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["duckdb", "postgres"])
def widgets(request, harness, tmp_path, monkeypatch):
    """The harness with the throw-away `widgets` CRM source, loading into a DuckDB file or a
    PostgreSQL database; yields (module, asset)."""
    if request.param == "postgres":
        url = request.getfixturevalue("wh_database")
        harness.warehouse = WarehouseResource(url=url, data_dir=str(tmp_path / "data"))
    module = install_source(harness, tmp_path, monkeypatch, "widgets", WIDGETS)
    harness.extra_resources = {"widgets": module.WidgetsResource()}
    yield module, build_source_asset(registry.declaration("widgets"))
    remove_source("widgets", monkeypatch)


def yesterday_at(hour: float) -> float:
    from sync_pipelines.partitions import parse_day

    return parse_day(day(-1)).timestamp() + hour * 3600


def account(i: int, **fields) -> dict:
    record = {"id": i, "name": f"Account {i}", "updated": yesterday_at(1 + i / 100)}
    record.update(fields)
    return record


def content(rows: list[dict]) -> dict:
    """Rows by key without the columns that record when (not what) was loaded, nor empty
    ones (a column another record added later reads NULL in the older rows)."""
    volatile = {"_synced_at", "_dlt_load_id", "_dlt_id"}
    return {
        (r["_connection_id"], r["id"]): {
            k: v for k, v in r.items() if k not in volatile and v is not None
        }
        for r in rows
    }


def written(harness, result) -> tuple[list, list]:
    """The documents and tombstones the run wrote to its file."""
    paths = harness.metadata(result, "widgets")["documents_files"]
    return (
        [d for p in paths for d in DocumentFiles.read(p)],
        [t for p in paths for t in DocumentFiles.read_tombstones(p)],
    )


def run(harness, asset, raise_on_error=True, days=None):
    result = harness.sync(asset, days or [day(-1)], raise_on_error=raise_on_error)
    if not result.success:
        return result, None
    return result, harness.metadata(result, "widgets")


def test_rows_merge_documents_and_deletions_tee(harness, widgets):
    module, asset = widgets
    module.STATE["accounts"] = {i: account(i, notes=f"note {i}" if i % 2 else "") for i in range(7)}
    harness.registry.write_text(
        "connections:\n  - {id: acme, source: widgets, credentials: {token: WIDGETS_TOKEN},"
        " options: {page_size: 3}}\n"
    )
    result, meta = run(harness, asset)
    rows = harness.warehouse.rows("widgets", "accounts")
    assert sorted(r["id"] for r in rows) == list(range(7))
    assert {r["_connection_id"] for r in rows} == {"acme"}
    assert (meta["run_rows_accounts"], meta["run_pages_accounts"], meta["run_pages"]) == (7, 3, 3)
    assert meta["run_records"] == 7
    assert meta["warehouse"].startswith(("duckdb ", "postgres://127.0.0.1:5432/sync_wh_"))
    assert module.STATE["page_sizes"][0] == 3
    docs = harness.documents(result, "widgets")
    assert sorted(d.doc_id for d in docs) == [f"widgets:acme:account-{i}" for i in (1, 3, 5)]
    first = content(rows)

    # A re-run changes nothing; then one edit and one archive.
    run(harness, asset)
    assert content(harness.warehouse.rows("widgets", "accounts")) == first
    module.STATE["accounts"][2] = account(2, name="Renamed", notes="", updated=yesterday_at(5))
    module.STATE["accounts"][3] = account(3, notes="note 3", archived=True, updated=yesterday_at(6))
    result, meta = run(harness, asset)
    after = content(harness.warehouse.rows("widgets", "accounts"))
    assert len(after) == 7
    changed = {k for k in after if after[k] != first.get(k)}
    assert changed == {("acme", 2), ("acme", 3)}
    assert after[("acme", 2)]["name"] == "Renamed" and "_deleted_at" not in after[("acme", 2)]
    assert after[("acme", 3)]["_deleted_at"].timestamp() == yesterday_at(6)
    assert meta["run_rows_deleted_accounts"] == 1
    (event,) = [e for e in written(harness, result)[1]]
    assert event.doc_id == "widgets:acme:account-3"


def connect(harness, **options) -> None:
    """The registry's one connection, `acme`, with these CRM options."""
    text = ", ".join(f"{k}: {v}" for k, v in options.items())
    harness.registry.write_text(
        "connections:\n  - {id: acme, source: widgets, credentials: {token: WIDGETS_TOKEN},"
        f" options: {{{text}}}}}\n"
    )


def test_a_failed_page_leaves_a_partial_load_the_next_run_merges_over(harness, widgets):
    module, asset = widgets
    module.STATE["accounts"] = {i: account(i, notes=f"note {i}") for i in range(450)}
    connect(harness, page_size=100, batch_size=100)
    module.STATE["fail_after_pages"] = 2  # 2 pages of 100 read (and loaded), the third fails
    result, _ = run(harness, asset, raise_on_error=False)
    assert not result.success
    assert result.asset_materializations_for_node("widgets") == []  # no mark: read again
    partial = harness.warehouse.rows("widgets", "accounts")
    first_pages = sorted(module.STATE["accounts"], key=str)[:200]  # _paged's order
    assert sorted(r["id"] for r in partial) == sorted(first_pages)
    module.STATE["fail_after_pages"] = None
    result, meta = run(harness, asset)
    rows = harness.warehouse.rows("widgets", "accounts")
    assert sorted(r["id"] for r in rows) == list(range(450))  # merged: no duplicate
    assert len(harness.documents(result, "widgets")) == 450  # the partial load's ones too
    assert meta["run_rows_accounts"] == 450


def test_full_refresh_detects_changes_and_soft_deletes_only_after_a_whole_read(harness, widgets):
    module, asset = widgets
    module.STATE["sheet"] = {i: {"id": i, "value": i * 10} for i in range(5)}
    result, meta = run(harness, asset, days=[day(0)])
    assert len(harness.documents(result, "widgets")) == 5
    hashes = {r["id"]: r["_row_hash"] for r in harness.warehouse.rows("widgets", "sheet_rows")}

    result, _ = run(harness, asset, days=[day(0)])  # nothing changed: no document
    assert harness.documents(result, "widgets") == []

    module.STATE["sheet"][1] = {"id": 1, "value": 11}
    del module.STATE["sheet"][4]
    module.STATE["fail_after_pages"] = 0  # a failed read deletes nothing
    failed, _ = run(harness, asset, days=[day(0)], raise_on_error=False)
    assert not failed.success
    assert all(r["_deleted_at"] is None for r in harness.warehouse.rows("widgets", "sheet_rows"))

    module.STATE["fail_after_pages"] = None
    result, meta = run(harness, asset, days=[day(0)])
    docs, tombstones = written(harness, result)
    assert [d.doc_id for d in docs] == ["widgets:acme:row-1"]
    assert [t.doc_id for t in tombstones] == ["widgets:acme:row-4"]
    rows = {r["id"]: r for r in harness.warehouse.rows("widgets", "sheet_rows")}
    assert rows[4]["_deleted_at"] is not None and rows[0]["_deleted_at"] is None
    assert rows[1]["_row_hash"] != hashes[1] and rows[0]["_row_hash"] == hashes[0]
    assert meta["run_rows_deleted_sheet_rows"] == 1

    module.STATE["sheet"][4] = {"id": 4, "value": 40}  # back again: a document, not deleted
    result, _ = run(harness, asset, days=[day(0)])
    assert [d.doc_id for d in harness.documents(result, "widgets")] == ["widgets:acme:row-4"]
    rows = {r["id"]: r for r in harness.warehouse.rows("widgets", "sheet_rows")}
    assert rows[4]["_deleted_at"] is None


def test_full_refresh_rows_a_failed_run_loaded_still_get_their_documents(harness, widgets):
    """The batches a failed run loaded hold the new values; the next complete run must still
    see those rows as changed (their documents were never written), then confirm them."""
    module, asset = widgets
    module.STATE["sheet"] = {i: {"id": i, "value": i} for i in range(6)}
    connect(harness, page_size=2, batch_size=2)
    run(harness, asset, days=[day(0)])
    module.STATE["sheet"] = {i: {"id": i, "value": 100 + i} for i in range(6)}  # all edited
    module.STATE["fail_after_pages"] = 2  # rows 0-3 read and loaded, then the read fails
    failed, _ = run(harness, asset, days=[day(0)], raise_on_error=False)
    assert not failed.success
    rows = {r["id"]: r for r in harness.warehouse.rows("widgets", "sheet_rows")}
    assert [rows[i]["value"] for i in range(6)] == [100, 101, 102, 103, 4, 5]
    assert all(r["_deleted_at"] is None for r in rows.values())  # no delete from a failed read

    module.STATE["fail_after_pages"] = None
    result, meta = run(harness, asset, days=[day(0)])
    docs = harness.documents(result, "widgets")
    assert sorted(d.doc_id for d in docs) == [f"widgets:acme:row-{i}" for i in range(6)]
    assert meta["run_documents_unchanged"] == 0
    result, meta = run(harness, asset, days=[day(0)])  # confirmed: nothing to write again
    assert harness.documents(result, "widgets") == []
    assert meta["run_documents_unchanged"] == 6
