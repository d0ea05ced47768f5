"""HubSpot: a window over 10,000 modified records is split and read completely, archived
records become soft deletes and tombstones, custom properties and associations land as
columns, 429s are waited out with or without Retry-After, and a bad token fails at once."""

from datetime import timedelta

import pytest
from sync_pipelines_sandbox import Company, Sandbox
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.hubspot.contract import CONTRACT, expected_rows
from sync_pipelines_sandbox.hubspot.data import SANDBOX_HUBSPOT_TOKEN, HubspotData

from sync_pipelines.connections import Connection
from sync_pipelines.documents import DocumentFiles
from sync_pipelines.errors import SourceAuthError
from sync_pipelines.sources.hubspot.client import SEARCH_CAP, HubspotResource
from sync_pipelines_tests.conftest import day, today

TOKEN_ENV = "TEST_HUBSPOT_TOKEN"


def client_for(url, monkeypatch, token=SANDBOX_HUBSPOT_TOKEN, **settings):
    monkeypatch.setenv(TOKEN_ENV, token)
    connection = Connection(
        id="acme", source="hubspot", base_url=url, credentials={"access_token": TOKEN_ENV}
    )
    resource = HubspotResource(rate_per_s=0, timeout_s=10, max_attempts=3, **settings)
    return resource.client_for(connection)


def ms(epoch: float) -> int:
    return int(epoch * 1000)


def test_a_window_over_ten_thousand_records_is_split_and_read_completely(monkeypatch):
    company = Company.generate(seed=5, messages=300, days=3)
    world = CrmWorld.sized(company, contacts=23_000)
    with Sandbox(company=company) as sandbox:
        client = client_for(sandbox.urls["hubspot"], monkeypatch)
        pages = client.search(
            "contacts", "lastmodifieddate", ms(world.start), ms(world.end) + 1, ["email"], 200
        )
        ids = [r["id"] for page in pages for r in page]
        totals = [total for obj, total in sandbox.hubspot.totals]
    assert len(ids) == 23_000 == len(set(ids))
    assert client.splits >= 1
    assert totals[0] == 23_000 > SEARCH_CAP  # the first query would have lost 13,000
    assert all(t <= SEARCH_CAP for t in totals[1:])
    assert sandbox.knobs.count_429["search"] == 0


def test_429_without_retry_after_backs_off_and_with_it_waits(sandbox, monkeypatch):
    client = client_for(sandbox.urls["hubspot"], monkeypatch)
    world = CrmWorld.of(sandbox.company)
    sandbox.hubspot.bare_429s = 1  # HubSpot does not always send Retry-After
    sandbox.knobs.inject("search", "429", count=1, retry_after=1)
    pages = client.search("notes", "hs_lastmodifieddate", ms(world.start), ms(world.end) + 1,
                          ["hs_note_body"], 20)  # fmt: skip
    ids = {r["id"] for page in pages for r in page}
    assert len(ids) == HubspotData(sandbox.company).count("notes")
    assert client.stats.rate_limited == 2


def test_a_bad_token_fails_fast(sandbox, monkeypatch):
    client = client_for(sandbox.urls["hubspot"], monkeypatch, token="pat-revoked")
    with pytest.raises(SourceAuthError) as failure:
        next(client.search("contacts", "lastmodifieddate", 0, 2**45, [], 20))
    assert "pat-revoked" not in str(failure.value)
    assert sum(sandbox.knobs.calls.values()) == 1


@pytest.fixture
def hub(harness, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_HUBSPOT_TOKEN)
    harness.registry.write_text(
        "connections:\n" + CONTRACT.registry_entry(harness.sandbox, "acme", TOKEN_ENV)
    )
    harness.extra_resources = CONTRACT.resources(harness.sandbox)
    return harness


def keys(hub, table):
    return {(r["id"],) for r in hub.warehouse.rows("hubspot", table, "acme")}


def test_range_sync_loads_every_table_with_custom_columns_and_associations(hub):
    days = [day(-3), day(0)]
    result = hub.sync(CONTRACT.asset, days)
    start, end = today() + timedelta(days=-3), today() + timedelta(days=1)
    truth = expected_rows(hub.sandbox.company, start, end)
    for table, expected in truth.items():
        assert expected and keys(hub, table) == expected, table
    contacts = hub.warehouse.rows("hubspot", "contacts", "acme")
    assert all(r["preferred_channel"] in ("email", "phone", "chat") for r in contacts)
    world = CrmWorld.of(hub.sandbox.company)
    for row in contacts:
        contact = world.record("contacts", int(row["id"][1:]))
        assert row["associated_companies"] == world.record("accounts", contact.fields["account"]).id
    notes = hub.warehouse.rows("hubspot", "notes", "acme")
    assert all(r["associated_contacts"] and r["associated_deals"] for r in notes)
    meta = hub.metadata(result, "hubspot")
    assert meta["run_rows_contacts"] == len(truth["contacts"])


def test_an_archived_note_is_soft_deleted_and_tombstoned(hub):
    days = [day(-3), day(0)]
    hub.sync(CONTRACT.asset, days)
    doc_id = CONTRACT.delete_record(hub.sandbox)
    native = doc_id.rsplit("-", 1)[1]
    result = hub.sync(CONTRACT.asset, days)
    (row,) = [r for r in hub.warehouse.rows("hubspot", "notes", "acme") if r["id"] == native]
    assert row["_deleted_at"] is not None and row["archived"] is True
    paths = hub.metadata(result, "hubspot")["documents_files"]
    tombstones = {t.doc_id for p in paths for t in DocumentFiles.read_tombstones(p)}
    assert doc_id in tombstones
    assert doc_id not in {d.doc_id for d in hub.documents(result, "hubspot")}


def test_an_edit_updates_one_row(hub):
    hub.sync(CONTRACT.asset, [day(-3), day(0)])
    before = {r["id"]: r for r in hub.warehouse.rows("hubspot", "contacts", "acme")}
    key = CrmWorld.of(hub.sandbox.company).edit("contacts", 1, first_name="Edited").id
    hub.sync(CONTRACT.asset, [day(0)])
    after = {r["id"]: r for r in hub.warehouse.rows("hubspot", "contacts", "acme")}
    assert after.keys() == before.keys()
    assert after[key]["firstname"] == "Edited" and before[key]["firstname"] != "Edited"
    changed = [k for k in after if after[k]["firstname"] != before[k]["firstname"]]
    assert changed == [key]


def test_documents_are_shared_unless_the_connection_narrows_them_to_the_owner():
    from types import SimpleNamespace

    from sync_pipelines.sources.hubspot import HubspotOptions
    from sync_pipelines.sources.hubspot.objects import BY_NAME, document
    from sync_pipelines.warehouse.tables import CrmRun

    client = SimpleNamespace(owner_emails=lambda: {"101": "ana@acme.test"})
    row = {"id": "400000007", "hs_note_body": "<p>Globex wants SSO</p><p>by Friday &amp; soon</p>",
           "hubspot_owner_id": "101", "updated_at": "2026-11-17T10:00:00.000Z",
           "associated_contacts": "200000001;200000002"}  # fmt: skip

    def doc(**options):
        run = SimpleNamespace(client=client, options=HubspotOptions(**options),
                              connection=SimpleNamespace(id="acme"))  # fmt: skip
        return document(row, CrmRun(run, 0, 2e9, 2e9, 200, True), BY_NAME["notes"])

    shared, narrowed = doc(), doc(access="owner", portal_id=42)
    assert shared.doc_id == "hubspot:acme:note-400000007" and shared.access == ("all",)
    assert shared.text == "Globex wants SSO\nby Friday & soon" and shared.author == "ana@acme.test"
    assert shared.metadata["associated_contacts"] == ["200000001", "200000002"]
    assert narrowed.access == ("ana@acme.test",)
    assert narrowed.url == "https://app.hubspot.com/contacts/42/record/0-46/400000007"
    with pytest.raises(ValueError, match="unknown objects"):
        HubspotOptions.from_connection({"objects": ["widgets"]}, "hubspot")
