"""The `fireflies` asset: recorded meetings of each Fireflies account, by meeting day."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceSpec, SyncOutcome, build_source_asset
from sync_pipelines.sources.fireflies.client import SOURCE
from sync_pipelines.sources.fireflies.sync import FirefliesOptions, FirefliesSync


def sync_fireflies(
    context: AssetExecutionContext,
    connection: Connection,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    options = FirefliesOptions.from_connection(connection.options)
    with context.resources.fireflies.client_for(connection) as client:
        result = FirefliesSync(client, options, connection.id).run(
            window, previous.high_water_mark, pending=previous.pending
        )
    return SyncOutcome.from_result(result, client.stats, pages_read=client.pages_read)


fireflies_asset = build_source_asset(
    SourceSpec(
        name=SOURCE,
        sync_resource_key="fireflies",
        description=(
            "Fireflies meeting transcripts with summaries, one document per meeting on the day "
            "it started; access follows the meeting's sharing, project_tags come from the "
            "connection's project keywords and the issue keys mentioned. A meeting still "
            "processing is fetched again by later runs until ready (written flagged "
            "transcript_missing after 7 days)."
        ),
        sync=sync_fireflies,
        kinds=frozenset({"fireflies"}),
    )
)
