"""Fireflies: meeting transcripts with their summaries, shared as their meetings were."""

from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.fireflies.client import SOURCE as NAME
from sync_pipelines.sources.fireflies.client import FirefliesResource
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
        "transcript_missing after 7 days)."
    ),
    schedule=Cadence(every_minutes=60, at_minute=23, stale_after_minutes=120),
    credentials_env={"api_key": "FIREFLIES_API_KEY"},
    docs_url="https://docs.fireflies.ai/",
)
