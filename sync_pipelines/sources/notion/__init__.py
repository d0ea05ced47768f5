"""Notion: pages shared with the integration, their full block content, by last edit, and
their deletions (the trash and failed page reads in the sync, absence in the daily listing)."""

from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.notion.client import NotionOptions, NotionResource
from sync_pipelines.sources.notion.reconcile import list_ids
from sync_pipelines.sources.notion.sync import SOURCE as NAME
from sync_pipelines.sources.notion.sync import NotionSync, NotionSyncResult


def sync(run: SourceRun) -> NotionSyncResult:
    reader = NotionSync(run.client, run.connection.id, max_workers=run.resource.max_workers)
    return reader.run(run.window, run.mark)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=NotionResource,
    sync=sync,
    options=NotionOptions,
    description=(
        "Notion pages shared with the integration, one document per page with its full "
        "block content; a day holds the pages last edited that day, and today's partition "
        "re-reads only what was edited since its last run. Trashed, deleted and unshared "
        "pages leave the index: the sync tombstones what the trash and its page reads show, a "
        "daily reconciliation of every page edited in the last 10 years (a search walk, about "
        "one call per 100 pages) what is no longer in search."
    ),
    schedule=Cadence(every_minutes=60, at_minute=11, stale_after_minutes=120),
    credentials_env={"token": "NOTION_TOKEN"},
    docs_url="https://developers.notion.com/reference/intro",
    # Daily at 03:20 UTC, staggered off the other sources' reconciliations. The walk costs
    # about one call per 100 pages, so it covers every page, not a month: old wiki pages are
    # the ones deleted long after their last edit.
    reconcile=Reconciliation(list_ids=list_ids, days=3650, at_minute=20),
)
