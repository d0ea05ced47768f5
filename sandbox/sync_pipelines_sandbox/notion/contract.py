"""Notion's place in the source contract."""

from datetime import datetime, time, timedelta, timezone

from sync_pipelines import clock
from sync_pipelines_sandbox.notion.api import SANDBOX_NOTION_TOKEN
from sync_pipelines_sandbox.notion.data import NotionWorkspace
from sync_pipelines.sources.notion.client import DOCUMENTED_RATE_PER_S, NotionResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract

notion_asset = source_asset("notion")

# Small pages so search and long pages span several; no client-side pacing in tests.
PAGE_SIZE = 25


def notion_resource(sandbox) -> NotionResource:
    return NotionResource(
        base_url=sandbox.urls["notion"], rate_per_s=0, page_size=PAGE_SIZE, timeout_s=5
    )


def expected_ids(company, start, end):
    pages = NotionWorkspace.of(company).pages_edited_between(start.timestamp(), end.timestamp())
    return {f"notion:acme:{page.id}" for page in pages}


def delete_record(sandbox) -> str:
    """Moves to the trash the live page of `data_days` edited longest ago, as a user would in
    Notion; answers its doc_id."""
    first, _ = CONTRACT.data_days
    start = datetime.combine(clock.today() + timedelta(days=first), time(), timezone.utc)
    pages = sandbox.notion.workspace.pages_edited_between(start.timestamp(), clock.now_epoch())
    page = min(pages, key=lambda p: (p.edited, p.id))
    sandbox.notion.trash_page(page.id)
    return f"notion:acme:{page.id}"


CONTRACT = SourceContract(
    name="notion",
    asset=notion_asset,
    resources=lambda sandbox: {"notion": notion_resource(sandbox)},
    registry_entry=lambda sandbox, conn_id, env: (
        f"  - id: {conn_id}\n    source: notion\n    base_url: {sandbox.urls['notion']}\n"
        f"    credentials: {{token: {env}}}\n"
    ),
    good_secret=SANDBOX_NOTION_TOKEN,
    list_route="search",
    expected_ids=expected_ids,
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},
    bench_size=(6000, 1, 100),
    delete_record=delete_record,
    # The trash is a signal: a re-run's trash search tombstones the page.
    deletion_seen_by="sync",
    reconcile_route="search",
)
