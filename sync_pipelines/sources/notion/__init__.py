"""Notion: pages shared with the integration, their full block content, by last edit."""

from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.notion.client import NotionOptions, NotionResource
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
        "re-reads only what was edited since its last run."
    ),
    schedule=Cadence(every_minutes=60, at_minute=11, stale_after_minutes=120),
    credentials_env={"token": "NOTION_TOKEN"},
    docs_url="https://developers.notion.com/reference/intro",
)
