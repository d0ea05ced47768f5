"""The Notion emulator and its workspace, driven by the official SDK (notion_client)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter

import httpx
import pytest
from notion_client import Client
from notion_client.errors import APIResponseError

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.notion.api import SANDBOX_NOTION_TOKEN, iso
from sync_pipelines_sandbox.notion.data import TEXT_BLOCK_TYPES, NotionWorkspace, minute_floor
from sync_pipelines_sandbox.server import fixed_ports

PAGES_FILTER = {"property": "object", "value": "page"}
NEWEST_FIRST = {"direction": "descending", "timestamp": "last_edited_time"}
ISO_MINUTE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$")


@pytest.fixture
def notion(sandbox) -> Client:
    return Client(auth=SANDBOX_NOTION_TOKEN, base_url=sandbox.urls["notion"], retry=False)


@pytest.fixture
def workspace(sandbox) -> NotionWorkspace:
    return sandbox.notion.workspace


def raw(sandbox, method, path, token=SANDBOX_NOTION_TOKEN, version="2025-09-03", **kwargs):
    headers = {"Authorization": f"Bearer {token}"}
    if version:
        headers["Notion-Version"] = version
    return httpx.request(
        method, sandbox.urls["notion"] + path, headers=headers, timeout=10, **kwargs
    )


def all_pages(notion: Client, page_size: int) -> tuple[list[dict], int]:
    results, calls, cursor = [], 0, None
    while True:
        body = notion.search(
            filter=PAGES_FILTER, sort=NEWEST_FIRST, page_size=page_size, start_cursor=cursor
        )
        calls += 1
        results += body["results"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return results, calls
        cursor = body["next_cursor"]


# ------------------------------------------------------------------ the workspace
def test_workspace_is_deterministic_scales_and_stays_in_the_past():
    anchor = clock.today() - dt.timedelta(days=10)  # a past span: independent of the clock
    one = NotionWorkspace.generate(Company.generate(seed=5, messages=600, days=3, anchor=anchor))
    two = NotionWorkspace.generate(Company.generate(seed=5, messages=600, days=3, anchor=anchor))
    assert [(p.id, p.title, p.edited, p.blocks) for p in one.pages.values()] == [
        (p.id, p.title, p.edited, p.blocks) for p in two.pages.values()
    ]
    bigger = NotionWorkspace.generate(Company.generate(seed=5, messages=2400, days=3))
    assert len(one.pages) == 600 // 12 and len(bigger.pages) == 2400 // 12
    now = clock.now_epoch()
    for page in bigger.pages.values():
        assert page.created <= page.edited <= now - 60


def test_workspace_is_coherent_with_the_company(company):
    ws = NotionWorkspace.of(company)
    assert NotionWorkspace.of(company) is ws
    text = "\n".join(line for page in ws.pages.values() for line in ws.page_lines(page.id))
    humans = [p for p in company.people if not p.is_bot]
    assert sum(f"@{p.name}" in text for p in humans) > len(humans) // 2
    assert all(project.name in text for project in company.projects)
    keys = set(re.findall(r"\b[A-Z]+-\d+\b", text))
    assert len(keys & set(company.issue_keys)) > 50
    kinds = Counter(p.kind for p in ws.pages.values())
    assert {"spec", "meeting", "runbook", "rfc", "wiki", "directory"} <= set(kinds)
    assert {p.parent_type for p in ws.pages.values()} == {"database", "page", "workspace"}
    nested = [b for b in ws.blocks.values() if b.type == "toggle" and b.children]
    assert nested and any(ws.blocks[c].children for b in nested for c in b.children)
    assert max(len(p.blocks) for p in ws.pages.values()) > 150  # several pages of children
    days = {time.strftime("%Y-%m-%d", time.gmtime(p.edited)) for p in ws.pages.values()}
    start, end = company.span()
    company_days = {time.strftime("%Y-%m-%d", time.gmtime(t)) for t in range(start, end, 86400)}
    company_days.add(time.strftime("%Y-%m-%d", time.gmtime(end - 1)))
    # every day of the company has edits, except the open day just after midnight
    assert days <= company_days
    assert company_days - days <= {clock.today().isoformat()}


# ------------------------------------------------------------------ search
def test_search_pages_through_every_page_newest_first(notion, workspace):
    first = notion.search(filter=PAGES_FILTER, sort=NEWEST_FIRST, page_size=10)
    assert first["object"] == "list" and first["type"] == "page_or_data_source"
    assert first["page_or_data_source"] == {} and first["has_more"] is True
    sources = notion.search(filter={"property": "object", "value": "data_source"})["results"]
    assert {d["object"] for d in sources} == {"data_source"}
    assert {d["id"] for d in sources} == {db.data_source_id for db in workspace.databases.values()}
    results, calls = all_pages(notion, 10)
    assert calls == -(-len(workspace.pages) // 10)
    assert sorted(p["id"] for p in results) == sorted(workspace.pages)
    edited = [p["last_edited_time"] for p in results]
    assert edited == sorted(edited, reverse=True)
    for page in results:
        stored = workspace.pages[page["id"]]
        assert page["object"] == "page" and ISO_MINUTE.match(page["last_edited_time"])
        assert page["last_edited_time"] == time.strftime(
            "%Y-%m-%dT%H:%M:00.000Z", time.gmtime(minute_floor(stored.edited))
        )
        titles = [p for p in page["properties"].values() if p["type"] == "title"]
        assert titles[0]["title"][0]["plain_text"] == stored.title
        assert page["url"].endswith(stored.id.replace("-", ""))
        if stored.parent_type == "database":
            db = workspace.databases[stored.parent_id]
            assert page["parent"] == {
                "type": "data_source_id",
                "data_source_id": db.data_source_id,
                "database_id": db.id,
            }


def test_search_before_data_sources_speaks_databases(sandbox, workspace):
    old = Client(
        auth=SANDBOX_NOTION_TOKEN, base_url=sandbox.urls["notion"], notion_version="2022-06-28"
    )
    body = old.search(filter={"property": "object", "value": "database"})
    assert body["type"] == "page_or_database"
    assert {d["id"] for d in body["results"]} == set(workspace.databases)
    pages = old.search(filter=PAGES_FILTER, page_size=100)["results"]
    assert {p["parent"]["type"] for p in pages} == {"database_id", "page_id", "workspace"}
    with pytest.raises(APIResponseError) as bad:
        old.search(filter={"property": "object", "value": "data_source"})
    assert bad.value.status == 400 and bad.value.code == "validation_error"


def test_search_by_title_and_oldest_first(notion, workspace):
    runbooks = notion.search(query="RUNBOOK", filter=PAGES_FILTER)["results"]
    assert {p["id"] for p in runbooks} == {
        p.id for p in workspace.pages.values() if "runbook" in p.title.lower()
    }
    oldest = notion.search(
        filter=PAGES_FILTER, sort={"direction": "ascending", "timestamp": "last_edited_time"}
    )["results"]
    assert oldest[0]["id"] == min(workspace.pages.values(), key=lambda p: p.edited).id
    with pytest.raises(APIResponseError) as bad:
        notion.search(filter={"property": "object", "value": ["page"]})
    assert bad.value.code == "validation_error"


def test_page_size_over_100_and_bad_cursors_are_validation_errors(notion, workspace):
    for call in (
        lambda: notion.search(filter=PAGES_FILTER, page_size=101),
        lambda: notion.blocks.children.list(next(iter(workspace.pages)), page_size=101),
        lambda: notion.search(start_cursor="not-a-cursor"),
        lambda: notion.blocks.children.list(next(iter(workspace.pages)), start_cursor="nope"),
    ):
        with pytest.raises(APIResponseError) as bad:
            call()
        assert bad.value.status == 400 and bad.value.code == "validation_error"
    assert "page_size should be ≤ `100`" in str(
        pytest.raises(APIResponseError, notion.search, page_size=101).value
    )


# ------------------------------------------------------------------ errors
def test_auth_version_and_unknown_path_errors_have_notion_shapes(sandbox):
    bad = raw(sandbox, "POST", "/v1/search", token="ntn_wrong", json={})
    assert bad.status_code == 401
    body = bad.json()
    assert {k: body[k] for k in ("object", "status", "code")} == {
        "object": "error",
        "status": 401,
        "code": "unauthorized",
    }
    assert body["message"] and body["request_id"]
    missing = raw(sandbox, "POST", "/v1/search", version=None, json={})
    assert (missing.status_code, missing.json()["code"]) == (400, "missing_version")
    unknown = raw(sandbox, "GET", "/v1/nothing/here")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "invalid_request_url")
    with pytest.raises(APIResponseError) as sdk:
        Client(auth="ntn_wrong", base_url=sandbox.urls["notion"], retry=False).search()
    assert sdk.value.code == "unauthorized"


def test_injected_429_has_notion_body_and_retry_after(sandbox, notion):
    sandbox.knobs.inject("search", "429", count=1, retry_after=2)
    with pytest.raises(APIResponseError) as limited:
        notion.search(filter=PAGES_FILTER)
    assert limited.value.status == 429 and limited.value.code == "rate_limited"
    assert limited.value.headers["retry-after"] == "2"
    sandbox.knobs.inject("blocks.children.list", "503")
    response = raw(
        sandbox, "GET", f"/v1/blocks/{next(iter(sandbox.notion.workspace.pages))}/children"
    )
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert sandbox.knobs.calls["search"] == 1


# ------------------------------------------------------------------ blocks, pages, users
def test_block_children_page_through_long_pages_and_nest(notion, workspace):
    long_page = max(workspace.pages.values(), key=lambda p: len(p.blocks))
    ids, cursor, calls = [], None, 0
    while True:
        body = notion.blocks.children.list(long_page.id, page_size=100, start_cursor=cursor)
        calls += 1
        assert body["object"] == "list" and body["type"] == "block" and body["block"] == {}
        ids += [b["id"] for b in body["results"]]
        if not body["has_more"]:
            break
        assert body["next_cursor"] == long_page.blocks[len(ids)]  # Notion: the next block's id
        cursor = body["next_cursor"]
    assert ids == long_page.blocks and calls == -(-len(ids) // 100)

    toggle = next(b for b in workspace.blocks.values() if b.type == "toggle" and b.children)
    parent_page = workspace.pages[toggle.page_id]
    listed = {
        b["id"]: b for b in notion.blocks.children.list(parent_page.id, page_size=100)["results"]
    }
    assert listed[toggle.id]["has_children"] is True
    assert listed[toggle.id]["toggle"]["rich_text"][0]["type"] in ("text", "mention")
    children = notion.blocks.children.list(toggle.id.replace("-", ""))["results"]
    assert [b["id"] for b in children] == toggle.children
    assert children[0]["parent"] == {"type": "block_id", "block_id": toggle.id}
    kinds = {b["type"] for b in listed.values()}
    assert kinds & set(TEXT_BLOCK_TYPES)
    with pytest.raises(APIResponseError) as missing:
        notion.blocks.children.list("00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404 and missing.value.code == "object_not_found"


def test_rich_text_mentions_and_issue_links(notion, workspace):
    directory = next(p for p in workspace.pages.values() if p.kind == "directory")
    first = notion.blocks.children.list(directory.id, page_size=100)["results"]
    mentions = [
        part
        for block in first
        if block["type"] == "bulleted_list_item"
        for part in block["bulleted_list_item"]["rich_text"]
        if part["type"] == "mention"
    ]
    assert mentions and all(
        m["plain_text"] == "@" + workspace.users[m["mention"]["user"]["id"]].name for m in mentions
    )
    spec = next(p for p in workspace.pages.values() if p.kind == "spec")
    callout = notion.blocks.children.list(spec.id, page_size=1)["results"][0]
    links = [p for p in callout["callout"]["rich_text"] if p["href"]]
    assert links and re.search(r"/browse/[A-Z]+-\d+$", links[0]["href"])


def test_edit_page_updates_its_text_and_last_edited_time(sandbox, notion, workspace):
    page = min(workspace.pages.values(), key=lambda p: p.edited)
    before = notion.pages.retrieve(page.id)["last_edited_time"]
    edited = sandbox.notion.edit_page(page.id, "Rewritten by the test ✏️")
    assert abs(edited - clock.now_epoch()) < 5
    after = notion.pages.retrieve(page.id)
    assert after["last_edited_time"] > before and ISO_MINUTE.match(after["last_edited_time"])
    newest = notion.search(filter=PAGES_FILTER, sort=NEWEST_FIRST, page_size=1)["results"][0]
    assert newest["id"] == page.id
    blocks = notion.blocks.children.list(page.id, page_size=100)["results"]
    texts = [b["paragraph"]["rich_text"] for b in blocks if b["type"] == "paragraph"]
    assert texts[0][0]["plain_text"] == "Rewritten by the test ✏️"
    assert "Rewritten by the test ✏️" in workspace.page_lines(page.id)


def test_trashed_pages_leave_search_but_not_the_trash_search_or_page_reads(
    sandbox, notion, workspace
):
    page = min(workspace.pages.values(), key=lambda p: p.edited)
    edited = sandbox.notion.trash_page(page.id)
    assert edited == page.edited and abs(edited - clock.now_epoch()) < 5  # the move is an edit
    live, _ = all_pages(notion, 100)
    assert page.id not in {p["id"] for p in live} and len(live) == len(workspace.pages) - 1
    assert page not in workspace.pages_edited_between(0, clock.now_epoch() + 60)

    for flt in ({**PAGES_FILTER, "in_trash": True}, {"in_trash": True}):
        trash = notion.search(filter=flt, sort=NEWEST_FIRST)
        assert [p["id"] for p in trash["results"]] == [page.id] and trash["has_more"] is False
        assert trash["results"][0]["in_trash"] is trash["results"][0]["archived"] is True
    read = notion.pages.retrieve(page.id)
    assert read["in_trash"] is read["archived"] is True
    assert notion.blocks.children.list(page.id, page_size=100)["results"]  # still readable

    for bad in ("yes", None):
        answer = raw(
            sandbox, "POST", "/v1/search", json={"filter": {**PAGES_FILTER, "in_trash": bad}}
        )
        assert answer.status_code == 400 and answer.json()["code"] == "validation_error"


def test_a_trash_at_an_earlier_time_keeps_the_last_edit(sandbox, notion, workspace):
    page = max(workspace.pages.values(), key=lambda p: p.edited)
    before = page.edited
    assert sandbox.notion.trash_page(page.id, at=before - 3600) == before
    assert notion.pages.retrieve(page.id)["last_edited_time"] == iso(before)


def test_unshared_pages_vanish_and_users_need_the_capability(sandbox, notion, workspace):
    page = next(iter(workspace.pages.values()))
    sandbox.notion.unshare_page(page.id)
    results, _ = all_pages(notion, 100)
    assert page.id not in {p["id"] for p in results}
    for call in (
        lambda: notion.pages.retrieve(page.id),
        lambda: notion.blocks.children.list(page.id),
    ):
        with pytest.raises(APIResponseError) as gone:
            call()
        assert gone.value.status == 404

    users = notion.users.list(page_size=5)
    assert users["type"] == "user" and users["has_more"] is True
    person = next(u for u in users["results"] if u["type"] == "person")
    assert person["person"]["email"].endswith("@acme.test")
    everyone = notion.users.list(page_size=100)["results"]
    assert len(everyone) == len(workspace.users) and any(u["type"] == "bot" for u in everyone)
    sandbox.notion.can_read_users = False
    with pytest.raises(APIResponseError) as restricted:
        notion.users.list()
    assert restricted.value.status == 403 and restricted.value.code == "restricted_resource"


def test_sandbox_serves_notion_on_its_port_and_exports_env(sandbox):
    assert fixed_ports(8700)["notion"] == 8706
    env = sandbox.env()
    assert env["NOTION_TOKEN"] == SANDBOX_NOTION_TOKEN
    assert env["NOTION_BASE_URL"] == sandbox.urls["notion"]
