"""The Genius source end to end: the asset reads the sandbox's MariaDB through the proxy and
loads the warehouse (rows = the truth per table), payments by full refresh with row hashes
(a changed row re-hashed, a removed row soft-deleted), edits and deletions by updated_at,
documents with the connection's access, and a SQL error that fails the run loading nothing."""

from datetime import timedelta

import pytest
from dagster import DagsterEventType
from sync_pipelines_sandbox.contract import contract_for
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.genius.data import KIND_OF

from sync_pipelines.sources.genius.tables import doc_id
from sync_pipelines_tests.conftest import day, today

pytestmark = pytest.mark.integration
ENV = "TEST_GENIUS_PASSWORD"


def days() -> list[str]:
    return [day(-3), day(0)]


@pytest.fixture
def genius(harness, monkeypatch):
    contract = contract_for("genius")
    monkeypatch.setenv(ENV, contract.good_secret)
    entry = contract.registry_entry(harness.sandbox, "acme", ENV)
    harness.registry.write_text("connections:\n" + entry)
    harness.extra_resources = contract.resources(harness.sandbox)
    harness.asset = contract.asset
    return harness


def with_access(harness, access: str) -> None:
    text = harness.registry.read_text()
    harness.registry.write_text(
        text.replace("page_size: 20}", f"page_size: 20, access: {access}}}")
    )


def rows(harness, table: str) -> dict[int, dict]:
    return {r["id"]: r for r in harness.warehouse.rows("genius", table, "acme")}


def truth(harness, table: str) -> set[int]:
    world = CrmWorld.of(harness.sandbox.company)
    start = today() + timedelta(days=-3)
    end = today() + timedelta(days=1)
    found = world.updated_between(KIND_OF[table], start.timestamp(), end.timestamp())
    return {r.i + 1 for r in found}


def test_a_range_run_loads_every_table_as_the_database_holds_it(genius):
    result = genius.sync(genius.asset, days())
    for table in ("customers", "appointments", "jobs", "notes"):
        assert set(rows(genius, table)) == truth(genius, table), table
    payments = {r[0] for r in genius.sandbox.genius.query("SELECT id FROM payments")}
    assert set(rows(genius, "payments")) == payments and payments
    meta = genius.metadata(result, "genius")
    assert meta["run_rows_appointments"] == len(truth(genius, "appointments"))
    assert meta["run_pages_appointments"] > 1
    docs = genius.documents(result, "genius")
    note = next(d for d in docs if d.doc_id.startswith("genius:acme:notes/"))
    assert note.access == ("all",) and note.text and "@" in note.author


def test_full_refresh_hashes_rows_and_soft_deletes_the_removed_ones(genius):
    db = genius.sandbox.genius
    genius.sync(genius.asset, days())
    before = rows(genius, "payments")
    assert all(r["_row_hash"] for r in before.values())
    changed, removed = sorted(before)[:2]
    db.execute("UPDATE payments SET amount = amount + 1 WHERE id = %s", (changed,))
    db.remove_payment(removed)
    genius.sync(genius.asset, [day(0)])
    after = rows(genius, "payments")
    assert set(after) == set(before)  # soft delete: the row stays, flagged
    assert after[changed]["_row_hash"] != before[changed]["_row_hash"]
    assert after[removed]["_deleted_at"] is not None
    untouched = set(before) - {changed, removed}
    assert all(after[i]["_row_hash"] == before[i]["_row_hash"] for i in untouched)
    assert all(after[i]["_deleted_at"] is None for i in untouched | {changed})


def test_an_edit_updates_one_row_and_its_document(genius):
    genius.sync(genius.asset, days())
    before = rows(genius, "notes")
    note = min(before)
    genius.sandbox.genius.edit("notes", note - 1, body="Globex asked for a second site survey.")
    result = genius.sync(genius.asset, [day(0)])
    after = rows(genius, "notes")
    assert set(after) == set(before)
    assert after[note]["body"] == "Globex asked for a second site survey."
    assert [i for i in after if after[i]["body"] != before[i]["body"]] == [note]
    docs = {d.doc_id: d for d in genius.documents(result, "genius")}
    assert docs[doc_id("acme", "notes", note)].text == "Globex asked for a second site survey."


def test_a_deleted_row_is_soft_deleted_and_tombstoned(genius):
    genius.sync(genius.asset, days())
    appointment = max(rows(genius, "appointments"))
    genius.sandbox.genius.delete("appointments", appointment - 1)
    result = genius.sync(genius.asset, [day(0)])
    assert rows(genius, "appointments")[appointment]["_deleted_at"] is not None
    meta = genius.metadata(result, "genius")
    assert meta["run_rows_deleted_appointments"] >= 1
    gone = doc_id("acme", "appointments", appointment)
    assert gone not in {d.doc_id for d in genius.documents(result, "genius")}


def test_the_access_option_narrows_who_reads_the_documents(genius):
    with_access(genius, "[sales@acme.example]")
    docs = genius.documents(genius.sync(genius.asset, days()), "genius")
    assert docs and {d.access for d in docs} == {("sales@acme.example",)}


def test_a_sql_error_fails_the_run_and_loads_nothing(genius):
    genius.sandbox.knobs.inject("appointments", "400", count=50, after=1)
    result = genius.sync(genius.asset, days(), raise_on_error=False)
    assert not result.success
    assert genius.sandbox.knobs.calls["appointments"] == 2  # page 2 failed, not retried
    failure = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE][-1]
    message = failure.step_failure_data.error.message
    assert "genius connection 'acme'" in message and "table 'appointments'" in message
    assert "1064" in message
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    # The loader loads batches while it reads, so the pages read before the error may be in
    # the warehouse: harmless, as no materialization records a mark (the next run reads them
    # again and merges over them).
    assert result.asset_materializations_for_node("genius") == []
    assert len(rows(genius, "appointments")) <= 20  # at most the page read before the error
