"""Fireflies: meeting transcripts with their summaries, shared as their meetings were."""

from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.fireflies.client import SOURCE as NAME
from sync_pipelines.sources.fireflies.client import FirefliesResource
from sync_pipelines.sources.fireflies.reconcile import list_ids
from sync_pipelines.sources.fireflies.sync import FirefliesOptions, FirefliesSync


def sync(run: SourceRun) -> SyncOutcome:
    reader = FirefliesSync(run.client, run.options, run.connection.id)
    result = reader.run(run.window, run.mark, pending=run.previous.pending)
    return SyncOutcome.from_result(result, run.client.stats, pages_read=run.client.pages_read)


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
        "transcript_missing after 7 days). A meeting no longer listed for its day leaves "
        "the index (each run lists its range; a daily listing covers the last 30 days)."
    ),
    schedule=Cadence(every_minutes=60, at_minute=23, stale_after_minutes=120),
    # Ids and dates of the last 30 days, daily at 03:35 UTC (between the hourly syncs at :23).
    reconcile=Reconciliation(list_ids, days=30, at_hour=3, at_minute=35),
    credentials_env={"api_key": "FIREFLIES_API_KEY"},
    docs_url="https://docs.fireflies.ai/",
    transcripts=True,
)
