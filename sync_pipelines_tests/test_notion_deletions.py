"""Notion deletions: trashed pages and failed page reads become tombstones in the sync, and the
daily reconciliation lists exactly the live pages of its window (or raises, listing nothing)."""

from __future__ import annotations

import math

import pytest

from sync_pipelines import clock
from sync_pipelines.documents import DocumentFiles
from sync_pipelines.errors import SourceError
from sync_pipelines.sources.notion.client import (
    NotionClient,
    NotionObjectMissing,
    NotionRequestRefused,
)
from sync_pipelines.sources.notion.reconcile import RECONCILE_REASON, NotionLister
from sync_pipelines.sources.notion.sync import INCREMENTAL_OVERLAP_S, NotionSync, trash_signal
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.notion.api import SANDBOX_NOTION_TOKEN
from sync_pipelines_sandbox.notion.contract import PAGE_SIZE
from sync_pipelines_sandbox.notion.data import minute_floor
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_notion_source import (
    client,
    epoch,
    notion,  # noqa: F401 - the fixture
    notion_asset,
    window,
    workspace,
)

pytestmark = pytest.mark.integration


def tombstones(harness, result) -> list:
    paths = harness.metadata(result, "notion")["documents_files"]
    return [t for p in paths for t in DocumentFiles.read_tombstones(p)]


def doc_id(page) -> str:
    return f"notion:acme:{page.id}"


# ------------------------------------------------------------------ signals in the sync
def test_a_trashed_page_becomes_a_tombstone_never_a_document(notion):
    ws = workspace(notion)
    page = ws.pages_edited_between(epoch(-2), epoch(-1))[0]
    first = notion.sync(notion_asset, [day(-2)])
    assert doc_id(page) in {d.doc_id for d in notion.documents(first, "notion")}

    trashed_at = notion.sandbox.notion.trash_page(page.id)
    again = notion.sync(notion_asset, [day(-2)])  # a re-run of the page's day
    docs = notion.documents(again, "notion")
    assert doc_id(page) not in {d.doc_id for d in docs}
    live = ws.pages_edited_between(epoch(-2), epoch(-1))
    assert {d.doc_id for d in docs} == {doc_id(p) for p in live}
    [tomb] = tombstones(notion, again)
    assert (tomb.doc_id, tomb.reason) == (doc_id(page), "in_trash")
    assert tomb.observed_at == minute_floor(trashed_at)  # its last_edited_time
    meta = notion.metadata(again, "notion")
    assert meta["run_pages_trashed"] == 1 and meta["run_tombstones_written"] == 1


def test_a_refused_trash_search_costs_the_signal_not_the_run(notion, monkeypatch):
    """`filter.in_trash` is recent in Notion's search: an API version that refuses it (HTTP
    400) leaves trashed pages to the reconciliation, and the run still writes its pages."""
    search = NotionClient.search_pages

    def refusing(self, in_trash=False):
        if in_trash:
            raise NotionRequestRefused("notion connection 'acme': refused (HTTP 400)")
        return search(self)

    monkeypatch.setattr(NotionClient, "search_pages", refusing)
    ws = workspace(notion)
    page = ws.pages_edited_between(epoch(-2), epoch(-1))[0]
    notion.sandbox.notion.trash_page(page.id)
    result = notion.sync(notion_asset, [day(-2)])
    meta = notion.metadata(result, "notion")
    assert meta["run_trash_search_refused"] == 1
    live = ws.pages_edited_between(epoch(-2), epoch(-1))
    assert {d.doc_id for d in notion.documents(result, "notion")} == {doc_id(p) for p in live}


def test_a_trash_that_kept_the_last_edit_is_seen_by_a_run_of_that_day(notion):
    ws = workspace(notion)
    page = ws.pages_edited_between(epoch(-1), epoch(0))[0]
    notion.sandbox.notion.trash_page(page.id, at=page.edited - 60)  # no newer edit time
    with client(notion) as reader:
        result = NotionSync(reader, "acme").run(window(-1, -1), None)
        outside = NotionSync(reader, "acme").run(window(0, 0), None)
    assert [(t.doc_id, t.reason) for t in result.tombstones] == [(doc_id(page), "in_trash")]
    assert result.tombstones[0].observed_at == minute_floor(page.edited)
    assert doc_id(page) not in {d.doc_id for d in result.documents}
    assert outside.tombstones == []  # the trash search stops below the window, like search


def test_trash_flags_in_search_results_are_tombstones(notion):
    """Search leaves trashed pages out, but a page carrying either flag (`archived` is the older
    name) is a tombstone wherever it shows up, newer than the window too."""
    assert trash_signal({"in_trash": True, "archived": True}) == "in_trash"
    assert trash_signal({"archived": True}) == "archived"
    assert trash_signal({"in_trash": False, "archived": False}) is None
    assert trash_signal({}) is None
    ws = workspace(notion)
    in_day = ws.pages_edited_between(epoch(-2), epoch(-1))
    newer = ws.pages_edited_between(epoch(-1), epoch(1))
    flagged = {in_day[0].id, newer[0].id}
    with client(notion) as old_api:
        search = old_api.search_pages

        def archived_in_search(in_trash=False):
            for page in search(in_trash):
                yield {**page, "archived": True} if page["id"] in flagged else page

        old_api.search_pages = archived_in_search
        result = NotionSync(old_api, "acme").run(window(-2, -2), None)
    assert {(t.doc_id, t.reason) for t in result.tombstones} == {
        (f"notion:acme:{page_id}", "archived") for page_id in flagged
    }
    assert {d.doc_id for d in result.documents} == {doc_id(p) for p in in_day[1:]}
    assert result.pages_trashed == 2


def test_a_404_on_a_page_read_becomes_a_tombstone_and_the_run_succeeds(notion, monkeypatch):
    ws = workspace(notion)
    in_day = ws.pages_edited_between(epoch(-1), epoch(0))
    victim = in_day[0]
    search = NotionClient.search_pages

    def search_then_unshare(self, in_trash=False):
        pages = list(search(self, in_trash))
        if not in_trash:
            notion.sandbox.notion.unshare_page(victim.id)  # deleted before its blocks are read
        return iter(pages)

    monkeypatch.setattr(NotionClient, "search_pages", search_then_unshare)
    result = notion.sync(notion_asset, [day(-1)])
    assert result.success
    docs = notion.documents(result, "notion")
    assert {d.doc_id for d in docs} == {doc_id(p) for p in in_day[1:]}
    [tomb] = tombstones(notion, result)
    assert (tomb.doc_id, tomb.reason) == (doc_id(victim), "not_found_or_unshared")
    assert tomb.observed_at == pytest.approx(clock.now_epoch(), abs=60)  # the run's now
    meta = notion.metadata(result, "notion")
    assert meta["run_pages_vanished"] == 1
    # the block read answered 404, and the page itself confirmed it
    assert notion.sandbox.knobs.calls["pages.retrieve"] == 1


def test_a_404_inside_a_page_asks_the_page_what_happened(notion):
    """A nested block answering 404 may be a block deleted by an edit (the page is alive: it is
    left for the run its new edit time falls in) or the page going to the trash mid-read."""
    ws = workspace(notion)
    in_day = ws.pages_edited_between(epoch(-1), epoch(0))
    nested = [p for p in in_day if any(ws.blocks[b].children for b in p.blocks)]
    edited, trashed = nested[0], nested[1]
    first_parent = {
        p.id: next(b for b in p.blocks if ws.blocks[b].children) for p in (edited, trashed)
    }
    with client(notion) as reader:
        children = reader.block_children

        def racing(block_id):
            if block_id == first_parent[trashed.id]:
                notion.sandbox.notion.trash_page(trashed.id)
            if block_id in first_parent.values():
                raise NotionObjectMissing(f"block {block_id} is gone")
            return children(block_id)

        reader.block_children = racing
        result = NotionSync(reader, "acme", max_workers=1).run(window(-1, -1), None)
    assert result.pages_changed_mid_read == 1 and result.pages_vanished == 0
    assert [(t.doc_id, t.reason) for t in result.tombstones] == [(doc_id(trashed), "in_trash")]
    docs = {d.doc_id for d in result.documents}
    assert doc_id(edited) not in docs and doc_id(trashed) not in docs
    assert docs == {doc_id(p) for p in in_day if p not in (edited, trashed)}


# ------------------------------------------------------------------ the reconciliation
def test_the_listing_is_exactly_the_live_pages_of_its_window(notion):
    ws = workspace(notion)
    recon = reconcile_window("acme", 2)
    start = recon.start_epoch
    in_window = sorted(
        ws.pages_edited_between(start, clock.now_epoch() + 60), key=lambda p: p.edited
    )
    trashed, unshared = in_window[0], in_window[1]
    notion.sandbox.notion.trash_page(trashed.id)
    notion.sandbox.notion.unshare_page(unshared.id)
    live = ws.pages_edited_between(start, clock.now_epoch() + 60)
    notion.sandbox.knobs.reset()
    with client(notion) as lister_client:
        began = clock.now_epoch()
        [listing] = NotionLister(lister_client, "acme").run(recon)
    assert listing.doc_ids == {doc_id(p) for p in live}
    assert doc_id(trashed) not in listing.doc_ids and doc_id(unshared) not in listing.doc_ids
    assert listing.scope == "notion:acme:" and listing.reason == RECONCILE_REASON
    assert listing.start == start and began <= listing.listed_at < began + 5
    # it never judges what search may not show yet
    assert listing.end == listing.listed_at - INCREMENTAL_OVERLAP_S
    # the walk stops with the page holding the first page older than the window, then one
    # call from the top for what was edited while it ran; no block read, no user lookup
    calls = notion.sandbox.knobs.calls
    assert calls["search"] == math.ceil((len(live) + 1) / PAGE_SIZE) + 1
    assert set(calls) == {"search"} and len(live) + 1 < len(ws.pages)


def test_a_page_edited_during_the_walk_is_still_listed(notion):
    """Search pages by cursor over the edit order: a page edited mid-walk jumps above the
    cursor, so only the second walk from the top can list it."""
    ws = workspace(notion)
    recon = reconcile_window("acme", 30)
    oldest = min(ws.pages.values(), key=lambda p: p.edited)
    walks: list[list[str]] = []
    with client(notion) as racing:
        search = racing.search_pages

        def edit_during_first_walk(in_trash=False):
            walks.append([])
            for page in search(in_trash):
                if len(walks) == 1 and len(walks[0]) == 1:
                    notion.sandbox.notion.edit_page(oldest.id, "Edited while listed")
                walks[-1].append(page["id"])
                yield page

        racing.search_pages = edit_during_first_walk
        [listing] = NotionLister(racing, "acme").run(recon)
    assert oldest.id not in walks[0] and oldest.id in walks[1]
    assert listing.doc_ids == {doc_id(p) for p in ws.pages.values()}


@pytest.mark.parametrize("kind", ["500", "malformed", "404"])
def test_a_failed_search_page_lists_nothing(notion, kind):
    notion.sandbox.knobs.inject("search", kind, count=3, after=1)  # the walk's second page
    with client(notion, max_attempts=3) as failing, pytest.raises(SourceError):
        NotionLister(failing, "acme").run(reconcile_window("acme", 30))
    # the first page was read; the second failed after the client's retries (a 404 at once)
    assert notion.sandbox.knobs.calls["search"] == (2 if kind == "404" else 4)


def test_a_30_day_reconciliation_of_the_demo_company_costs(capsys):
    company = Company.generate(seed=7, messages=3000, days=5)  # `sync-pipelines demo`'s company
    with Sandbox(company=company) as sandbox:
        pages = len(sandbox.notion.workspace.shared_pages())
        with NotionClient(
            connection_id="acme",
            token=SANDBOX_NOTION_TOKEN,
            base_url=sandbox.urls["notion"],
            rate_per_s=0,
        ) as demo:
            [listing] = NotionLister(demo, "acme").run(reconcile_window("acme", 30))
            calls = demo.stats.api_calls
        assert len(listing.doc_ids) == pages
        assert calls == sandbox.knobs.calls["search"] == math.ceil(pages / 100) + 1
    with capsys.disabled():
        print(f"\nnotion: 30-day reconciliation of the demo company, {pages} pages: {calls} calls")
