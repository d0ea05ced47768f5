"""The `notion` asset and its sync against the Notion emulator, checked against the workspace's
ground truth: content, metadata, the search stop rule, incremental runs and resilience."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta

import httpx
import pytest
from notion_client.errors import APIResponseError

from sync_pipelines.connections import Connection
from sync_pipelines.paging import PagingError
from sync_pipelines.partitions import window_from_keys
from sync_pipelines.resilience import SourceAuthError
from sync_pipelines_sandbox.notion.api import SANDBOX_NOTION_TOKEN
from sync_pipelines_sandbox.notion.data import TEXT_BLOCK_TYPES, NotionWorkspace, minute_floor
from sync_pipelines.sources.notion.client import NotionClient, NotionOptions, NotionResource
from sync_pipelines.sources.notion.sync import INCREMENTAL_OVERLAP_S, NotionSync
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, today
from sync_pipelines_sandbox.notion.contract import PAGE_SIZE, notion_resource

notion_asset = source_asset("notion")

pytestmark = pytest.mark.integration
TOKEN_ENV = "TEST_NOTION_TOKEN"


@pytest.fixture
def notion(harness, monkeypatch):
    """The harness with an `acme` Notion connection to the emulator."""
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_NOTION_TOKEN)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: notion\n"
        f"    base_url: {harness.sandbox.urls['notion']}\n"
        f"    credentials: {{token: {TOKEN_ENV}}}\n"
    )
    harness.extra_resources = {"notion": notion_resource(harness.sandbox)}
    return harness


def workspace(harness) -> NotionWorkspace:
    return harness.sandbox.notion.workspace


def client(harness, **overrides) -> NotionClient:
    options = dict(rate_per_s=0, page_size=PAGE_SIZE, timeout_s=5, backoff_s=0.05)
    options.update(overrides)
    return NotionClient(
        connection_id="acme",
        token=SANDBOX_NOTION_TOKEN,
        base_url=harness.sandbox.urls["notion"],
        **options,
    )


def window(first: int, last: int):
    return window_from_keys([f"acme|{day(first)}", f"acme|{day(last)}"])


def epoch(offset: int) -> float:
    return (today() + timedelta(days=offset)).timestamp()


def list_calls(ws: NotionWorkspace, page) -> int:
    """block-children calls a full read of one page costs: one per PAGE_SIZE children of the
    page and of every nested block (sub-pages are not entered)."""

    def calls(children: list[str]) -> int:
        total = max(1, math.ceil(len(children) / PAGE_SIZE))
        for block_id in children:
            block = ws.blocks[block_id]
            if block.children and block.type != "child_page":
                total += calls(block.children)
        return total

    return calls(page.blocks)


def descendants(ws: NotionWorkspace, page) -> list:
    out, stack = [], list(page.blocks)
    while stack:
        block = ws.blocks[stack.pop()]
        out.append(block)
        stack.extend(block.children)
    return out


# ------------------------------------------------------------------ content and metadata
def test_range_run_matches_ground_truth_text_and_metadata(notion):
    ws = workspace(notion)
    result = notion.sync(notion_asset, [day(-3), day(0)])
    docs = {d.doc_id: d for d in notion.documents(result, "notion")}
    pages = ws.pages_edited_between(epoch(-3), epoch(1))
    assert set(docs) == {f"notion:acme:{p.id}" for p in pages} and len(pages) == len(ws.pages)

    for page in pages:
        doc = docs[f"notion:acme:{page.id}"]
        at = 0
        for line in ws.page_lines(page.id):  # every text block, nested ones, in reading order
            at = doc.text.index(line, at) + len(line)
        for block in descendants(ws, page):
            if block.type == "image":
                assert block.extra["caption"] not in doc.text
        meta = doc.metadata
        assert doc.title == meta["title"] == page.title
        assert meta["page_id"] == page.id and doc.url == meta["url"]
        assert doc.timestamp_epoch == meta["timestamp_epoch"] == minute_floor(page.edited)
        assert doc.updated_at == meta["last_edited_time"] and doc.created_at == meta["created_time"]
        assert doc.author == meta["created_by"] == ws.users[page.created_by].name
        assert meta["last_edited_by"] == ws.users[page.edited_by].name
        assert doc.access == ("all",)
        expected_parent = {
            "database": f"database:{page.parent_id}",
            "page": f"page:{page.parent_id}",
            "workspace": "workspace",
        }[page.parent_type]
        assert meta["parent"] == expected_parent
        assert meta["blocks"] == len(descendants(ws, page))  # sub-pages are not entered

    wiki = next(p for p in pages if p.kind == "wiki")
    runbook = next(p for p in pages if p.kind == "runbook")
    assert ws.page_lines(runbook.id)[0] not in docs[f"notion:acme:{wiki.id}"].text

    meta = notion.metadata(result, "notion")
    blocks = [b for p in pages for b in descendants(ws, p)]
    assert meta["run_blocks_read"] == len(blocks)
    assert meta["run_blocks_skipped"] == sum(b.type not in TEXT_BLOCK_TYPES for b in blocks)
    assert meta["mode"] == "full" and meta["run_pages_vanished"] == 0
    assert meta["run_user_cache_size"] == len(ws.users)


def test_text_renders_structure(notion):
    ws = workspace(notion)
    docs = notion.documents(notion.sync(notion_asset, [day(-3), day(0)]), "notion")
    spec = next(d for d in docs if ws.pages[d.metadata["page_id"]].kind == "spec")
    lines = spec.text.split("\n")
    assert "# Overview" in lines and "## Goals" in lines
    assert any(line.startswith("  - ") for line in lines)  # a nested bullet, indented
    assert any(line.startswith(("[ ] ", "[x] ")) for line in lines)
    assert any(line.startswith("1. Ship ") for line in lines) and any(
        line.startswith("2. Ship ") for line in lines
    )


# ------------------------------------------------------------------ the window
def test_search_stops_at_window_start_and_skips_later_edits(notion):
    ws = workspace(notion)
    edited_later = ws.pages_edited_between(epoch(-1), epoch(0))[0]
    notion.sandbox.notion.edit_page(edited_later.id, "Moved on")  # now in today's partition
    result = notion.sync(notion_asset, [day(-1)])
    docs = notion.documents(result, "notion")
    in_day = ws.pages_edited_between(epoch(-1), epoch(0))
    assert {d.metadata["page_id"] for d in docs} == {p.id for p in in_day}
    assert edited_later not in in_day
    newer = ws.pages_edited_between(epoch(0), epoch(1))
    meta = notion.metadata(result, "notion")
    assert meta["run_pages_newer_than_window"] == len(newer) > 0
    calls = notion.sandbox.knobs.calls
    # search stops with the page holding the first page older than the window; then one
    # search of the (empty) trash
    assert calls["search"] == math.ceil((len(newer) + len(in_day) + 1) / PAGE_SIZE) + 1
    assert calls["search"] - 1 < math.ceil(len(ws.pages) / PAGE_SIZE)
    # only the window's pages are read, each completely (all children pages, all nesting)
    assert calls["blocks.children.list"] == sum(list_calls(ws, p) for p in in_day)
    assert meta["run_api_calls"] == calls["search"] + calls["blocks.children.list"] + 1  # + users


def test_today_reruns_fetch_only_edits_and_keep_doc_ids(notion):
    ws = workspace(notion)
    first = notion.sync(notion_asset, [day(0)])
    mark = notion.metadata(first, "notion")["high_water_mark"]
    assert notion.metadata(first, "notion")["mode"] == "full"
    old_page = ws.pages_edited_between(epoch(-2), epoch(-1))[0]
    notion.sandbox.notion.edit_page(old_page.id, "Decision: ship SUBS-1 behind a flag.")
    notion.sandbox.knobs.reset()

    second = notion.sync(notion_asset, [day(0)])
    meta = notion.metadata(second, "notion")
    docs = {d.doc_id: d for d in notion.documents(second, "notion")}
    assert meta["mode"] == "incremental" and meta["high_water_mark"] > mark
    edited = docs[f"notion:acme:{old_page.id}"]
    assert "Decision: ship SUBS-1 behind a flag." in edited.text
    assert edited.timestamp_epoch >= epoch(0)
    since = max(epoch(0), mark - INCREMENTAL_OVERLAP_S)
    recent = ws.pages_edited_between(since, meta["high_water_mark"])
    assert set(docs) == {f"notion:acme:{p.id}" for p in recent}
    assert notion.sandbox.knobs.calls["search"] == 2  # the pages, then the trash


def test_an_edit_in_the_minute_of_the_last_run_is_not_lost(notion):
    """Notion rounds edit times down to the minute: the overlap re-reads that minute."""
    ws = workspace(notion)
    run_at = (time.time() - 90) // 60 * 60 + 30  # 30 s into a past minute
    with client(notion) as notion_client:
        sync = NotionSync(notion_client, "acme")
        first = sync.run(window(0, 0), None, now=run_at)
        page = ws.pages_edited_between(epoch(-3), epoch(-2))[0]
        notion.sandbox.notion.edit_page(page.id, "Late edit", at=run_at + 10)
        second = sync.run(window(0, 0), first.high_water_mark)
    assert minute_floor(run_at + 10) < first.high_water_mark  # reported before the mark
    assert second.mode == "incremental"
    assert page.id in {d.metadata["page_id"] for d in second.documents}


# ------------------------------------------------------------------ pacing and resilience
def test_one_rate_limiter_paces_all_page_readers(notion):
    rate = 100.0
    with client(notion, rate_per_s=rate) as paced:
        started = time.monotonic()
        result = NotionSync(paced, "acme", max_workers=4).run(window(-1, -1), None)
        elapsed = time.monotonic() - started
        calls = paced.stats.api_calls
    assert result.documents and calls > 30
    # four threads with their own limiters would finish in about a quarter of this
    assert elapsed >= (calls - 1) / rate * 0.95
    assert paced.stats.throttle_wait_s > 0


def test_a_429_holds_off_every_thread_of_the_connection(notion):
    limited = APIResponseError(
        code="rate_limited",
        status=429,
        message="You have been rate limited.",
        headers=httpx.Headers({"retry-after": "1"}),
        raw_body_text="{}",
    )
    hit, sent = threading.Event(), []

    def first():
        if not hit.is_set():
            hit.set()
            raise limited
        return {}

    def second():
        sent.append(time.monotonic())
        return {}

    with client(notion) as shared:
        other = threading.Thread(target=lambda: (hit.wait(), shared.call("other", second)))
        other.start()
        started = time.monotonic()
        shared.call("first", first)
        other.join()
    assert sent[0] - started >= 1.0  # the other thread's call waited for the Retry-After too
    assert shared.stats.rate_limited == 1 and shared.stats.throttle_wait_s >= 1.0


def test_block_reads_survive_429_5xx_timeouts_and_malformed_bodies(notion):
    knobs = notion.sandbox.knobs
    knobs.timeout_s = 1.0
    route = "blocks.children.list"
    for kind in ("429", "500", "503", "malformed", "timeout"):
        knobs.inject(route, kind, retry_after=1)
    expected = {p.id for p in workspace(notion).pages_edited_between(epoch(-1), epoch(0))}
    started = time.monotonic()
    with client(notion, timeout_s=0.3) as flaky:
        result = NotionSync(flaky, "acme", max_workers=1).run(window(-1, -1), None)
    assert {d.metadata["page_id"] for d in result.documents} == expected
    assert flaky.stats.rate_limited == 1 and flaky.stats.retries == 5
    assert flaky.stats.throttle_wait_s >= 1 and time.monotonic() - started >= 1


def test_401_on_a_block_read_fails_fast_naming_the_connection(notion):
    notion.sandbox.knobs.inject("blocks.children.list", "401", count=5)
    with client(notion) as rejected, pytest.raises(SourceAuthError) as failure:
        NotionSync(rejected, "acme", max_workers=1).run(window(-1, -1), None)
    assert "notion connection 'acme'" in str(failure.value)
    assert SANDBOX_NOTION_TOKEN not in str(failure.value)
    assert notion.sandbox.knobs.calls["blocks.children.list"] == 1


def test_a_page_unshared_mid_run_is_a_tombstone_not_fatal(notion):
    ws = workspace(notion)
    in_day = ws.pages_edited_between(epoch(-1), epoch(0))
    victim = in_day[0]
    with client(notion) as racing:
        listed = racing.search_pages

        def search_then_unshare(in_trash=False):
            pages = list(listed(in_trash))
            if not in_trash:
                notion.sandbox.notion.unshare_page(victim.id)
            return iter(pages)

        racing.search_pages = search_then_unshare
        result = NotionSync(racing, "acme").run(window(-1, -1), None, now=epoch(0) + 5)
    assert result.pages_vanished == 1
    assert {d.metadata["page_id"] for d in result.documents} == {p.id for p in in_day[1:]}
    [tomb] = result.tombstones
    assert (tomb.doc_id, tomb.reason) == (f"notion:acme:{victim.id}", "not_found_or_unshared")
    assert tomb.observed_at == epoch(0) + 5  # the run's now


def test_without_user_access_authors_are_user_ids(notion):
    notion.sandbox.notion.can_read_users = False
    with client(notion) as limited:
        result = NotionSync(limited, "acme").run(window(-1, -1), None)
    ws = workspace(notion)
    assert result.documents and result.user_cache_size == 0
    for doc in result.documents:
        assert doc.author == ws.pages[doc.metadata["page_id"]].created_by


def test_bad_settings_are_value_errors_naming_the_option(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_NOTION_TOKEN)
    conn = Connection("acme", "notion", credentials={"token": TOKEN_ENV})
    for resource, option in (
        (NotionResource(page_size=101), "page_size"),
        (NotionResource(page_size=0), "page_size"),
        (NotionResource(rate_per_s=-1), "rate_per_s"),
        (NotionResource(max_workers=0), "max_workers"),
    ):
        with pytest.raises(ValueError, match=option):
            resource.client_for(conn)
    with_options = Connection(
        "acme", "notion", credentials={"token": TOKEN_ENV}, options={"databases": ["x"]}
    )
    with pytest.raises(ValueError, match="databases"):
        NotionResource().client_for(with_options)


# ------------------------------------------------------------------ the shared source model
def _connection(monkeypatch, **fields) -> Connection:
    """A connection to Notion, with no NOTION_* settings in the environment yet."""
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_NOTION_TOKEN)
    monkeypatch.delenv("NOTION_BASE_URL", raising=False)
    monkeypatch.delenv("NOTION_RATE_PER_S", raising=False)
    return Connection("acme", "notion", credentials={"token": TOKEN_ENV}, **fields)


def test_environment_is_read_when_a_client_is_built(monkeypatch):
    conn = _connection(monkeypatch)
    resource = NotionResource(page_size=10)  # a launchpad config naming only the page size
    monkeypatch.setenv("NOTION_BASE_URL", "http://env.example:9000")
    monkeypatch.setenv("NOTION_RATE_PER_S", "7")
    with resource.client_for(conn) as built:
        assert (built.host, built.limiter.rate, built.page_size) == ("env.example", 7.0, 10)


def test_base_url_precedence_connection_resource_env_default(monkeypatch):
    plain = _connection(monkeypatch)
    own = _connection(monkeypatch, base_url="http://conn.example")
    configured = NotionResource(base_url="http://resource.example")
    with NotionResource().client_for(plain) as default:
        assert default.host == "api.notion.com"
    monkeypatch.setenv("NOTION_BASE_URL", "http://env.example")
    cases = ((NotionResource(), plain, "env.example"), (configured, plain, "resource.example"))
    for resource, conn, host in (*cases, (configured, own, "conn.example")):
        with resource.client_for(conn) as built:
            assert built.host == host


def test_defaults_are_notions_documented_limits(monkeypatch):
    with NotionResource().client_for(_connection(monkeypatch)) as built:
        assert built.limiter.rate == 3.0 and built.page_size == 100
        assert built.max_attempts == 6 and built.max_rate_limit_waits == 10
        assert built._sdk.options.timeout_ms == 30_000


def test_bad_timeout_and_rate_env_are_value_errors_naming_them(monkeypatch):
    conn = _connection(monkeypatch)
    with pytest.raises(ValueError, match="timeout_s"):
        NotionResource(timeout_s=0).client_for(conn)
    monkeypatch.setenv("NOTION_RATE_PER_S", "fast")
    with pytest.raises(ValueError, match="NOTION_RATE_PER_S"):
        NotionResource().client_for(conn)


def test_options_are_refused_naming_source_and_option():
    with pytest.raises(ValueError, match="notion option 'databases'"):
        NotionOptions.from_connection({"databases": ["x"]}, "notion")
    assert NotionOptions.from_connection(None, "notion") == NotionOptions()


def test_a_long_retry_after_is_capped_by_the_shared_rule(notion):
    limited = APIResponseError(
        code="rate_limited",
        status=429,
        message="You have been rate limited.",
        headers=httpx.Headers({"retry-after": "600"}),
        raw_body_text="{}",
    )
    answers = iter([limited])

    def once_limited():
        error = next(answers, None)
        if error is not None:
            raise error
        return {}

    with client(notion, max_retry_after_s=0.2) as capped:
        started = time.monotonic()
        capped.call("capped", once_limited)
    assert time.monotonic() - started < 1.0 and capped.stats.rate_limited == 1


def test_a_cursor_that_comes_back_fails_naming_the_listing(notion):
    loop = {"object": "list", "results": [{"id": "a"}], "has_more": True, "next_cursor": "c1"}
    with client(notion) as looping, pytest.raises(PagingError, match="GET /v1/users"):
        list(looping._paginate("GET /v1/users", lambda cursor: loop))
