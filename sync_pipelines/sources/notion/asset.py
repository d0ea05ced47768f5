"""The `notion` asset: pages of each Notion integration, by the day of their last edit."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceSpec, SyncOutcome, build_source_asset
from sync_pipelines.sources.notion.sync import SOURCE, NotionSync


def sync_notion(
    context: AssetExecutionContext,
    connection: Connection,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    resource = context.resources.notion
    with resource.client_for(connection) as client:
        result = NotionSync(client, connection.id, max_workers=resource.max_workers).run(
            window, previous.high_water_mark
        )
    return SyncOutcome.from_result(result, client.stats)


notion_asset = build_source_asset(
    SourceSpec(
        name=SOURCE,
        sync_resource_key="notion",
        description=(
            "Notion pages shared with the integration, one document per page with its full "
            "block content; a day holds the pages last edited that day, and today's partition "
            "re-reads only what was edited since its last run."
        ),
        sync=sync_notion,
        kinds=frozenset({"notion"}),
    )
)
