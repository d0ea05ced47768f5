"""Notion: pages shared with the integration, their full block content, by last edit."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SyncOutcome
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.notion.client import NotionOptions, NotionResource
from sync_pipelines.sources.notion.sync import SOURCE as NAME
from sync_pipelines.sources.notion.sync import NotionSync


def sync(
    context: AssetExecutionContext,
    connection: Connection,
    options: NotionOptions,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    resource = context.resources.notion
    with resource.client_for(connection) as client:
        result = NotionSync(client, connection.id, max_workers=resource.max_workers).run(
            window, previous.high_water_mark
        )
    return SyncOutcome.from_result(result, client.stats)


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
    cadence_minutes=60,
    offset_minutes=11,
    freshness_minutes=120,
    credentials_env={"token": "NOTION_TOKEN"},
    docs_url="https://developers.notion.com/reference/intro",
    kinds=frozenset({"notion"}),
)
