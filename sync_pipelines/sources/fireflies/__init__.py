"""Fireflies: meeting transcripts with their summaries, shared as their meetings were."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SyncOutcome
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.fireflies.client import SOURCE as NAME
from sync_pipelines.sources.fireflies.client import FirefliesResource
from sync_pipelines.sources.fireflies.sync import FirefliesOptions, FirefliesSync


def sync(
    context: AssetExecutionContext,
    connection: Connection,
    options: FirefliesOptions,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    with context.resources.fireflies.client_for(connection) as client:
        result = FirefliesSync(client, options, connection.id).run(
            window, previous.high_water_mark, pending=previous.pending
        )
    return SyncOutcome.from_result(result, client.stats, pages_read=client.pages_read)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=FirefliesResource,
    sync=sync,
    options=FirefliesOptions,
    description=(
        "Fireflies meeting transcripts with summaries, one document per meeting on the day "
        "it started; access follows the meeting's sharing, project_tags come from the "
        "connection's project keywords and the issue keys mentioned. A meeting still "
        "processing is fetched again by later runs until ready (written flagged "
        "transcript_missing after 7 days)."
    ),
    cadence_minutes=60,
    offset_minutes=23,
    freshness_minutes=120,
    credentials_env={"api_key": "FIREFLIES_API_KEY"},
    docs_url="https://docs.fireflies.ai/",
    kinds=frozenset({"fireflies"}),
)
