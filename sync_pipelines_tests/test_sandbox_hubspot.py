"""The HubSpot emulator answers as HubSpot's reference says: search paging and its 10,000
cap, archived records only in the list API, custom properties, associations, error bodies."""

import itertools

import httpx
import pytest
from sync_pipelines_sandbox import Company
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.hubspot.data import SANDBOX_HUBSPOT_TOKEN, HubspotData

AUTH = {"Authorization": f"Bearer {SANDBOX_HUBSPOT_TOKEN}"}


@pytest.fixture
def api(sandbox):
    with httpx.Client(base_url=sandbox.urls["hubspot"], headers=AUTH, timeout=10) as client:
        yield client


def search(api, obj="contacts", after=None, limit=20, lo=0, hi=2**45):
    prop = "lastmodifieddate" if obj == "contacts" else "hs_lastmodifieddate"
    body = {
        "filterGroups": [{"filters": [
            {"propertyName": prop, "operator": "GTE", "value": str(lo)},
            {"propertyName": prop, "operator": "LT", "value": str(hi)},
        ]}],
        "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
        "properties": ["firstname", "preferred_channel", prop],
        "limit": limit,
    }  # fmt: skip
    if after is not None:
        body["after"] = after
    return api.post(f"/crm/v3/objects/{obj}/search", json=body)


def test_search_pages_in_modified_order_with_total_and_after(api, sandbox):
    first = search(api).json()
    count = HubspotData(sandbox.company).count("contacts")
    assert first["total"] == count and len(first["results"]) == 20
    assert first["paging"]["next"]["after"] == "20"
    seen, after = [], None
    while True:
        page = search(api, after=after).json()
        seen += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if after is None:
            break
    assert len(seen) == count == len({r["id"] for r in seen})
    times = [r["properties"]["lastmodifieddate"] for r in seen]
    assert times == sorted(times)
    assert seen[0]["properties"]["preferred_channel"] in ("email", "phone", "chat")


def test_search_refuses_paging_past_ten_thousand(api):
    answer = search(api, after="10000")
    assert answer.status_code == 400
    assert answer.json()["status"] == "error"
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert search(api, limit=201).status_code == 400


def test_bad_token_answers_hubspots_401(sandbox):
    answer = httpx.post(
        f"{sandbox.urls['hubspot']}/crm/v3/objects/contacts/search",
        json={}, headers={"Authorization": "Bearer pat-revoked"},
    )  # fmt: skip
    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION"


def test_archived_records_leave_search_and_appear_in_the_archived_listing(api, sandbox):
    world = CrmWorld.of(sandbox.company)
    gone = world.delete("contacts", 4)
    edited = world.edit("contacts", 2, first_name="Renamed")
    results = search(api, limit=200).json()["results"]
    ids = [r["id"] for r in results]
    assert gone.id not in ids
    assert ids[-1] == edited.id and results[-1]["properties"]["firstname"] == "Renamed"
    archived = api.get("/crm/v3/objects/contacts", params={"archived": "true"}).json()
    assert [r["id"] for r in archived["results"]] == [gone.id]
    assert archived["results"][0]["archived"] is True and archived["results"][0]["archivedAt"]
    live = api.get("/crm/v3/objects/contacts", params={"limit": 100}).json()["results"]
    assert gone.id not in {r["id"] for r in live}


def test_properties_list_custom_ones_without_hubspot_defined(api):
    props = api.get("/crm/v3/properties/contacts").json()["results"]
    custom = [p["name"] for p in props if not p.get("hubspotDefined")]
    assert custom == ["preferred_channel"]
    assert {"firstname", "email", "lastmodifieddate"} <= {p["name"] for p in props}


def test_associations_batch_read(api, sandbox):
    world = CrmWorld.of(sandbox.company)
    contact = world.record("contacts", 3)
    company = world.record("accounts", contact.fields["account"])
    body = api.post(
        "/crm/v4/associations/contacts/companies/batch/read",
        json={"inputs": [{"id": contact.id}, {"id": "999"}]},
    ).json()
    assert body["results"] == [
        {"from": {"id": contact.id}, "to": [{"toObjectId": int(company.id), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}]}]}
    ]  # fmt: skip


def test_owners_and_unknown_objects(api):
    owners = api.get("/crm/v3/owners").json()["results"]
    assert owners and all("@" in o["email"] for o in owners)
    assert api.get("/crm/v3/owners", params={"archived": "true"}).json()["results"] == []
    assert api.get("/crm/v3/objects/widgets").status_code == 400


def test_a_large_world_serves_deep_pages_without_building_earlier_records():
    company = Company.generate(seed=3, messages=300, days=3)
    CrmWorld.sized(company, contacts=200_000)
    data = HubspotData(company)
    world = data.world
    total, records = data.window("contacts", world.start, world.end, 9_800)
    assert total == 200_000
    assert [r.i for r in itertools.islice(records, 3)] == [9_800, 9_801, 9_802]


def test_windows_with_edits_and_archives_page_like_the_ground_truth():
    import random

    company = Company.generate(seed=11, messages=600, days=3)
    data = HubspotData(company)
    world, rng = data.world, random.Random(1)
    n = data.count("contacts")
    for k in range(9):
        (world.edit if k % 3 else world.delete)("contacts", rng.randrange(n))
        for _ in range(8):
            lo = rng.uniform(world.start - 1000, world.end + 10**6)
            hi = rng.uniform(lo, world.end + 2 * 10**9)
            live = (data.record("contacts", j) for j in range(n))
            truth = [r.id for r in sorted(
                (r for r in live if not r.archived and lo <= r.updated < hi),
                key=lambda r: (r.updated, r.i))]  # fmt: skip
            for offset in range(len(truth) + 2):
                total, records = data.window("contacts", lo, hi, offset)
                assert total == len(truth)
                assert [r.id for r in records] == truth[offset:]


@pytest.mark.parametrize("obj", ["tickets", "calls", "emails", "meetings", "tasks", "deals"])
def test_every_object_can_be_edited_and_archived(api, sandbox, obj):
    data: HubspotData = sandbox.hubspot
    prop = {"tickets": "subject", "calls": "hs_call_body", "emails": "hs_email_text",
            "meetings": "hs_meeting_body", "tasks": "hs_task_body", "deals": "dealname"}[obj]  # fmt: skip
    edited = data.edit(obj, 3, **{prop: "Edited body"})
    gone = data.archive(obj, 5)
    assert HubspotData(sandbox.company).record(obj, 3).properties[prop] == "Edited body"
    body = {"sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": [prop], "limit": 200}  # fmt: skip
    results, after = [], None
    while True:
        page = api.post(f"/crm/v3/objects/{obj}/search", json={**body, **({"after": after} if after else {})}).json()  # fmt: skip
        results += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            break
    ids = [r["id"] for r in results]
    assert gone.id not in ids and len(ids) == data.count(obj) - 1
    assert ids[-1] == edited.id and results[-1]["properties"][prop] == "Edited body"
    archived = api.get(f"/crm/v3/objects/{obj}", params={"archived": "true"}).json()["results"]
    assert [r["id"] for r in archived] == [gone.id] and archived[0]["archivedAt"]
    assert data.associations_of(obj, gone.id) is None
    with pytest.raises(KeyError):
        data.edit(obj, data.count(obj), subject="x")


def test_associations_read_both_ways_and_follow_dissociation(api, sandbox):
    data: HubspotData = sandbox.hubspot
    world = CrmWorld.of(sandbox.company)
    contact = world.record("contacts", 3)
    company = data.associations_of("contacts", contact.id)["companies"][0]

    def linked(source, target, rid):
        body = api.post(f"/crm/v4/associations/{source}/{target}/batch/read",
                        json={"inputs": [{"id": rid}]}).json()  # fmt: skip
        return [str(t["toObjectId"]) for r in body["results"] for t in r["to"]]

    assert contact.id in linked("companies", "contacts", company)
    assert linked("contacts", "companies", contact.id) == [company]
    before = data.record("contacts", 3).updated
    data.dissociate("contacts", contact.id, "companies", company)
    assert contact.id not in linked("companies", "contacts", company)
    assert linked("contacts", "companies", contact.id) == []
    assert data.record("contacts", 3).updated > before  # its num_associated_* changed
    data.associate("companies", company, "contacts", contact.id)
    assert linked("contacts", "companies", contact.id) == [company]
