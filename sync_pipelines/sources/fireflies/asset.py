"""The `fireflies` asset: recorded meetings of each Fireflies account, by meeting day."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import SourceSpec, SyncOutcome, build_source_asset
from sync_pipelines.sources.fireflies.client import SOURCE
from sync_pipelines.sources.fireflies.sync import FirefliesOptions, FirefliesSync


def sync_fireflies(
    context: AssetExecutionContext,
    connection: Connection,
    window: SyncWindow,
    high_water_mark: float | None,
) -> SyncOutcome:
    options = FirefliesOptions.from_connection(connection.options)
    with context.resources.fireflies.client_for(connection) as client:
        result = FirefliesSync(client, options, connection.id).run(window, high_water_mark)
    return SyncOutcome(
        documents=result.documents,
        high_water_mark=result.high_water_mark,
        stats=client.stats,
        metadata={
            "mode": result.mode,
            "meetings_fetched": result.meetings_fetched,
            "pages_read": client.pages_read,
            "meetings_shared": result.meetings_shared,
            "meetings_private": result.meetings_private,
            "meetings_tagged": result.meetings_tagged,
            "sentences": result.sentences,
        },
    )


fireflies_asset = build_source_asset(
    SourceSpec(
        name=SOURCE,
        sync_resource_key="fireflies",
        description=(
            "Fireflies meeting transcripts with summaries, one document per meeting on the day "
            "it started; access follows the meeting's sharing, project_tags come from the "
            "connection's project keywords and the issue keys mentioned."
        ),
        sync=sync_fireflies,
        kinds=frozenset({"fireflies"}),
    )
)
