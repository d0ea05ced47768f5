"""The CRM contract: what every `group="crm"` source loads into the warehouse, checked
against its emulator. Rows in the warehouse equal the truth after a multi-page range run; a
re-run changes nothing; an edit updates exactly one row; an archive sets `_deleted_at` and
tombstones its document; the run reports rows per table, pages and peak memory.

Runs for every declared CRM source whose contract entry fills the CRM fields, and for
`crmthrow`, a throw-away CRM source of this file over the sandbox's CRM world (no emulator:
its client asks the sandbox's Knobs in-process, so faults, 429s and call counts behave as
behind HTTP). test_source_contract.py runs its generic checks on crmthrow too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sync_pipelines_sandbox.contract import SourceContract, contract_for

from sync_pipelines.documents import DocumentFiles
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines_tests.conftest import day, today
from sync_pipelines_tests.test_tombstones_end_to_end import install_source, remove_source

pytestmark = pytest.mark.integration
THROWAWAY = "crmthrow"
GOOD_ENV, BAD_ENV = "CONTRACT_SECRET_GOOD", "CONTRACT_SECRET_BAD"
VOLATILE = {"_synced_at", "_dlt_load_id", "_dlt_id"}  # when a row was loaded, not what it says

THROWAWAY_TEXT = '''
"""A throw-away CRM source over the sandbox's CRM world, its API faults from the Knobs."""

from sync_pipelines.documents import Document
from sync_pipelines.errors import (
    MalformedResponseError, RateLimited, SourceAuthError, SourcePermanentError, TransientError,
)
from sync_pipelines.resilience import CallStats, call_with_retries
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.resource import SourceResourceBase
from sync_pipelines.warehouse.crm import CrmOptions, crm_sync
from sync_pipelines.warehouse.tables import Table

BACKEND = {"knobs": None, "world": None}
GOOD_TOKEN = "crm-good-token"


class Client:
    def __init__(self, token, connection_id):
        self.token, self.connection_id, self.stats = token, connection_id, CallStats()

    def close(self):
        pass

    def call(self, route, answer):
        def once():
            self.stats.add(api_calls=1)
            fault = BACKEND["knobs"].admit(route)
            if self.token != GOOD_TOKEN or (fault and fault.kind == "401"):
                raise SourceAuthError("401: the token was rejected")
            if fault is None:
                return answer()
            if fault.kind == "429":
                raise RateLimited(fault.retry_after)
            if fault.kind in ("500", "503", "timeout", "502", "504"):
                raise TransientError(f"{fault.kind} from {route}")
            if fault.kind == "malformed":
                raise MalformedResponseError(f"malformed answer from {route}")
            raise SourcePermanentError(f"{fault.kind} from {route}")

        return call_with_retries(once, stats=self.stats, backoff_s=0.05)


class Resource(SourceResourceBase):
    ENV_PREFIX = "CRMTHROW"
    DEFAULT_BASE_URL = "https://api.crmthrow.test"

    def client_for(self, connection):
        return Client(connection.secret("token"), connection.id)


def pages_of(kind):
    def pages(run):
        found = list(BACKEND["world"].updated_between(kind, run.lower, run.upper))
        for start in range(0, max(len(found), 1), run.page_size):
            chunk = run.client.call(kind, lambda: found[start : start + run.page_size])
            yield [
                {"id": r.id, "updated": r.updated, "archived": r.archived, **r.fields}
                for r in chunk
            ]

    return pages


def note_document(record, run):
    return Document(
        doc_id=Document.make_id("crmthrow", run.connection_id, f"note-{record['id']}"),
        source="crmthrow", connection=run.connection_id, title="Note",
        text=record["body"], url="", author=record["owner_email"], created_at="",
        updated_at="", timestamp_epoch=record["updated"],
    )


def archived(record):
    return bool(record["archived"])


def updated(record):
    return record["updated"]


TABLES = [
    Table("accounts", ("id",), pages_of("accounts"), None, archived, updated_at=updated),
    Table("notes", ("id",), pages_of("notes"), note_document, archived, updated_at=updated),
]

SOURCE = SourceDeclaration(
    name="crmthrow",
    resource=Resource,
    sync=crm_sync(TABLES, overlap_s=0),
    options=CrmOptions,
    group="crm",
    description="A throw-away CRM over the sandbox's CRM world.",
    schedule=Cadence(every_minutes=60, at_minute=13, stale_after_minutes=120),
    credentials_env={"token": "CRMTHROW_TOKEN"},
    docs_url="https://docs.crmthrow.test/",
)
'''


def _world(sandbox):
    from sync_pipelines_sandbox.crm_world import CrmWorld

    return CrmWorld.of(sandbox.company)


def _in_data_days(world, kind: str):
    """A record of `kind` updated inside the contract's data days (past days, not today)."""
    start = (today() + timedelta(days=-3)).timestamp()
    end = today().timestamp()
    records = [r for r in world.updated_between(kind, start, end) if not r.archived]
    return records[len(records) // 2]


def throwaway_contract(harness, tmp_path, monkeypatch) -> SourceContract:
    """Installs crmthrow on the harness (undo with `remove_source(THROWAWAY, ...)`) and
    answers its contract entry."""
    from sync_pipelines_sandbox.crm_world import CrmWorld

    module = install_source(harness, tmp_path, monkeypatch, THROWAWAY, THROWAWAY_TEXT)
    module.BACKEND.update(knobs=harness.sandbox.knobs, world=_world(harness.sandbox))
    harness.instance.add_dynamic_partitions(connections_partitions_name(THROWAWAY), ["broken"])

    def truth(kind, company, start, end):
        world = CrmWorld.of(company)
        return list(world.updated_between(kind, start.timestamp(), end.timestamp()))

    def delete_note(sandbox) -> str:
        note = _world(sandbox).delete("notes", _in_data_days(_world(sandbox), "notes").i)
        return f"{THROWAWAY}:acme:note-{note.id}"

    def edit_account(sandbox):
        record = _in_data_days(_world(sandbox), "accounts")
        _world(sandbox).edit("accounts", record.i, name=record.fields["name"] + " (renamed)")
        return "accounts", (record.id,)

    def archive_note(sandbox):
        note = _world(sandbox).delete("notes", _in_data_days(_world(sandbox), "notes").i)
        return "notes", (note.id,)

    return SourceContract(
        name=THROWAWAY,
        asset=build_source_asset(registry.declaration(THROWAWAY)),
        resources=lambda sandbox: {THROWAWAY: module.Resource()},
        registry_entry=lambda sandbox, cid, env: (
            f"  - id: {cid}\n    source: {THROWAWAY}\n    credentials: {{token: {env}}}\n"
            "    options: {page_size: 7}\n"
        ),
        good_secret=module.GOOD_TOKEN,
        list_route="notes",
        expected_ids=lambda company, start, end: {
            f"{THROWAWAY}:acme:note-{r.id}"
            for r in truth("notes", company, start, end)
            if not r.archived
        },
        delete_record=delete_note,
        deletion_seen_by="sync",
        expected_rows=lambda company, start, end: {
            kind: {(r.id,) for r in truth(kind, company, start, end)}
            for kind in ("accounts", "notes")
        },
        edit_record=edit_account,
        delete_crm_record=archive_note,
    )


CRM_SOURCES = [d.name for d in registry.declarations() if d.group == "crm"]


def _has_crm_fields(name: str) -> bool:
    try:
        entry = contract_for(name)
    except LookupError:
        return True  # fails in the check below, naming the file to add
    return entry.expected_rows is not None


@pytest.fixture(params=[THROWAWAY, *CRM_SOURCES])
def crm(request, harness, tmp_path, monkeypatch) -> SourceContract:
    if request.param == THROWAWAY:
        contract = throwaway_contract(harness, tmp_path, monkeypatch)
    else:
        contract = contract_for(request.param)
    monkeypatch.setenv(GOOD_ENV, contract.good_secret)
    for name, value in contract.extra_env.items():
        monkeypatch.setenv(name, value)
    harness.registry.write_text(
        "connections:\n" + contract.registry_entry(harness.sandbox, "acme", GOOD_ENV)
    )
    harness.extra_resources = contract.resources(harness.sandbox)
    yield contract
    if request.param == THROWAWAY:
        remove_source(THROWAWAY, monkeypatch)


def data_range(contract):
    first, last = contract.data_days
    start = today() + timedelta(days=first)
    end = today() + timedelta(days=last + 1)
    return [day(first), day(last)], start, end


def key_columns(meta: dict, table: str) -> list[str]:
    return meta[f"key_{table}"].split(",")


def snapshot(harness, contract, meta: dict, tables) -> dict[str, dict[tuple, dict]]:
    """Each table's rows of `acme` by key: their content without load-time columns and
    empty values (a column a later record added reads NULL in older rows)."""
    out = {}
    for table in tables:
        keys = key_columns(meta, table)
        out[table] = {
            tuple(str(row[k]) for k in keys): {
                k: v for k, v in row.items() if k not in VOLATILE and v is not None
            }
            for row in harness.warehouse.rows(contract.name, table, "acme")
        }
    return out


def as_keys(expected: dict[str, set[tuple]]) -> dict[str, set[tuple]]:
    return {t: {tuple(str(v) for v in key) for key in keys} for t, keys in expected.items()}


def tombstoned(harness, result, name: str) -> set[str]:
    paths = harness.metadata(result, name)["documents_files"]
    return {t.doc_id for p in paths for t in DocumentFiles.read_tombstones(p)}


def test_the_contract_has_crm_fields(crm):
    assert crm.expected_rows is not None, f"{crm.name}'s contract has no expected_rows"
    assert crm.edit_record is not None and crm.delete_crm_record is not None
    assert registry.declaration(crm.name).group == "crm"


def test_rows_equal_the_truth_and_a_rerun_changes_nothing(harness, crm):
    if not _has_crm_fields(crm.name):
        pytest.fail(f"{crm.name}'s contract has no CRM fields (expected_rows, edit_record, ...)")
    days, start, end = data_range(crm)
    result = harness.sync(crm.asset, days)
    meta = harness.metadata(result, crm.name)
    expected = as_keys(crm.expected_rows(harness.sandbox.company, start, end))
    assert all(expected.values()), "every compared table has rows in the range"
    first = snapshot(harness, crm, meta, expected)
    assert {t: set(rows) for t, rows in first.items()} == expected
    assert harness.sandbox.knobs.calls[crm.list_route] > 1, "the listing must span pages"
    for table in expected:
        assert meta[f"run_rows_{table}"] >= len(expected[table])
        assert f"run_pages_{table}" in meta
    for key in (
        "run_pages",
        "run_records",
        "run_api_calls",
        "run_rate_limited_429",
        "run_peak_memory_mb",
        "warehouse",
    ):
        assert key in meta, key
    assert meta["run_peak_memory_mb"] > 0

    harness.sync(crm.asset, days)
    assert snapshot(harness, crm, meta, expected) == first


def test_an_edit_updates_exactly_one_row(harness, crm):
    if not _has_crm_fields(crm.name):
        pytest.fail(f"{crm.name}'s contract has no CRM fields (expected_rows, edit_record, ...)")
    days, start, end = data_range(crm)
    meta = harness.metadata(harness.sync(crm.asset, days), crm.name)
    tables = crm.expected_rows(harness.sandbox.company, start, end)
    before = snapshot(harness, crm, meta, tables)
    table, key = crm.edit_record(harness.sandbox)
    key = tuple(str(v) for v in key)
    assert key in before[table], f"{table} {key} was not loaded before the edit"
    harness.sync(crm.asset, [day(0)])  # the edit made it today's record
    after = snapshot(harness, crm, meta, tables)
    assert {t: len(rows) for t, rows in after.items()} == {
        t: len(rows) for t, rows in before.items()
    }
    changed = {(t, k) for t in after for k in after[t] if after[t][k] != before[t].get(k)}
    assert changed == {(table, key)}


def test_an_archive_sets_deleted_at_and_tombstones_its_document(harness, crm):
    if not _has_crm_fields(crm.name):
        pytest.fail(f"{crm.name}'s contract has no CRM fields (expected_rows, edit_record, ...)")
    days, _, _ = data_range(crm)
    meta = harness.metadata(harness.sync(crm.asset, days), crm.name)
    table, key = crm.delete_crm_record(harness.sandbox)
    key = tuple(str(v) for v in key)
    result = harness.sync(crm.asset, days)
    rows = {
        tuple(str(r[k]) for k in key_columns(meta, table)): r
        for r in harness.warehouse.rows(crm.name, table, "acme")
    }
    assert rows[key]["_deleted_at"] is not None
    assert harness.metadata(result, crm.name)[f"run_rows_deleted_{table}"] >= 1
    if rows[key].get("_doc_id"):
        assert rows[key]["_doc_id"] in tombstoned(harness, result, crm.name)
