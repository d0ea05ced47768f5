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
from sync_pipelines_tests.test_warehouse_loader import wh_database  # noqa: F401 - a fixture

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
    from sync_pipelines.sources.hubspot.associations import KEY

    columns = KEY if table == "associations" else ("id",)
    return {tuple(r[c] for c in columns) for r in hub.warehouse.rows("hubspot", table, "acme")}


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


def test_every_object_edits_one_row_and_archives_to_a_soft_delete(hub):
    from sync_pipelines_sandbox.hubspot.contract import (
        EDITED,
        EDITED_TEXT,
        SEARCHABLE,
        archive_every_object,
        edit_every_object,
    )

    hub.sync(CONTRACT.asset, [day(-3), day(0)])
    volatile = {"_synced_at", "_dlt_load_id", "_dlt_id"}

    def snapshot():
        return {
            # None values left out: a column a later row added reads NULL in older rows
            obj: {r["id"]: {k: v for k, v in r.items() if k not in volatile and v is not None}
                  for r in hub.warehouse.rows("hubspot", obj, "acme")}
            for obj in EDITED
        }  # fmt: skip

    before = snapshot()
    edited, archived = edit_every_object(hub.sandbox), archive_every_object(hub.sandbox)
    result = hub.sync(CONTRACT.asset, [day(0)])
    after = snapshot()
    tombstones = {
        t.doc_id
        for p in hub.metadata(result, "hubspot")["documents_files"]
        for t in DocumentFiles.read_tombstones(p)
    }
    for obj, prop in EDITED.items():
        assert after[obj].keys() == before[obj].keys(), obj
        changed = {k for k in after[obj] if after[obj][k] != before[obj][k]}
        assert changed == {edited[obj], archived[obj]}, obj
        assert after[obj][edited[obj]][prop] == EDITED_TEXT, obj
        assert "_deleted_at" not in after[obj][edited[obj]], obj
        gone = after[obj][archived[obj]]
        assert gone["archived"] is True and gone["_deleted_at"] is not None, obj
        if obj in SEARCHABLE:
            assert f"hubspot:acme:{SEARCHABLE[obj]}-{archived[obj]}" in tombstones


def _edit_once_on_page(data, obj: str, page_number: int, count: int) -> list[str]:
    """A search hook that edits the first `count` records of the `page_number`-th search page
    of `obj` right after serving them (they move past the window's end); answers their ids."""
    moved: list[str] = []
    pages = {"n": 0}

    def hook(searched, page):
        if searched != obj:
            return
        pages["n"] += 1
        if pages["n"] == page_number:
            for record in page[:count]:
                moved.append(data.edit(obj, record.i, hs_sandbox_note="moved").id)

    data.search_hooks.append(hook)
    return moved


def test_records_edited_mid_query_shift_offset_paging_but_keyset_loses_none(sandbox, monkeypatch):
    import httpx

    world, data = CrmWorld.of(sandbox.company), sandbox.hubspot
    lo, hi = ms(world.start), ms(world.end) - 1000  # edits land at now, past the window
    truth = {obj: [r.id for r in data.window(obj, lo / 1000, hi / 1000, 0)[1]]
             for obj in ("deals", "contacts")}  # fmt: skip

    # Control: plain offset paging (`after`) skips records when earlier ones move away.
    _edit_once_on_page(data, "deals", 2, 3)
    filters = [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(lo)},
               {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": str(hi)}]  # fmt: skip
    seen, after = [], None
    with httpx.Client(base_url=sandbox.urls["hubspot"], timeout=10,
                      headers={"Authorization": f"Bearer {SANDBOX_HUBSPOT_TOKEN}"}) as api:  # fmt: skip
        while True:
            body = {"filterGroups": [{"filters": filters}], "limit": 5,
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    **({"after": after} if after else {})}  # fmt: skip
            page = api.post("/crm/v3/objects/deals/search", json=body).json()
            seen += [r["id"] for r in page["results"]]
            after = page.get("paging", {}).get("next", {}).get("after")
            if not after:
                break
    assert len(set(truth["deals"]) - set(seen)) == 3  # the shift the client must not suffer

    moved = _edit_once_on_page(data, "contacts", 2, 3)
    client = client_for(sandbox.urls["hubspot"], monkeypatch)
    pages = client.search("contacts", "lastmodifieddate", lo, hi, ["firstname"], 5)
    ids = [r["id"] for page in pages for r in page]
    assert len(moved) == 3 and set(moved) <= set(ids)
    assert ids == truth["contacts"]  # every record once, in order: none skipped, none twice
    assert len(truth["contacts"]) > 20 and client.keyset_restarts >= len(ids) // 5 - 1


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_associations_are_held_once_answer_both_ways_and_removals_soft_delete(
    hub, request, tmp_path, destination
):
    from sync_pipelines.sources.hubspot.associations import associated
    from sync_pipelines.warehouse.destination import WarehouseResource

    if destination == "postgres":  # the machine's PostgreSQL, a database of our own
        url = request.getfixturevalue("wh_database")
        hub.warehouse = WarehouseResource(url=url, data_dir=str(tmp_path / "data"))

    hub.sync(CONTRACT.asset, [day(-3), day(0)])
    links = hub.warehouse.rows("hubspot", "associations", "acme")
    keys = [(r["object_a"], r["id_a"], r["object_b"], r["id_b"]) for r in links]
    assert keys and len(keys) == len(set(keys))  # read from both ends, stored once
    assert all(a < b for a, _, b, _ in keys)
    data: HubspotData = hub.sandbox.hubspot
    deal = next(r for r in hub.warehouse.rows("hubspot", "deals", "acme") if not r["archived"])
    (contact,) = data.associations_of("deals", deal["id"])["contacts"]
    # A deal's contacts and the contact's deals, both from the one stored row.
    assert contact in associated(hub.warehouse, "acme", "deals", deal["id"], "contacts")
    assert deal["id"] in associated(hub.warehouse, "acme", "contacts", contact, "deals")
    assert [k for k in keys if {("contacts", contact), ("deals", deal["id"])}
            == {(k[0], k[1]), (k[2], k[3])}] != []  # fmt: skip

    data.dissociate("deals", deal["id"], "contacts", contact)
    result = hub.sync(CONTRACT.asset, [day(0)])
    assert hub.metadata(result, "hubspot")["run_rows_deleted_associations"] == 1
    assert contact not in associated(hub.warehouse, "acme", "deals", deal["id"], "contacts")
    assert deal["id"] not in associated(hub.warehouse, "acme", "contacts", contact, "deals")
    after = hub.warehouse.rows("hubspot", "associations", "acme")
    assert len(after) == len(links)  # soft: the row stays, with _deleted_at
    assert sum(r["_deleted_at"] is not None for r in after) == 1

    data.associate("deals", deal["id"], "contacts", contact)  # linked again: the row revives
    hub.sync(CONTRACT.asset, [day(0)])
    assert contact in associated(hub.warehouse, "acme", "deals", deal["id"], "contacts")
    assert all(
        r["_deleted_at"] is None for r in hub.warehouse.rows("hubspot", "associations", "acme")
    )
