"""Fathom: recorded meetings with their transcripts, summaries and action items."""

from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.fathom.client import SOURCE as NAME
from sync_pipelines.sources.fathom.client import FathomResource
from sync_pipelines.sources.fathom.reconcile import list_ids
from sync_pipelines.sources.fathom.sync import FathomOptions, FathomSync


def sync(run: SourceRun) -> SyncOutcome:
    reader = FathomSync(run.client, run.options, run.connection.id)
    result = reader.run(run.window, run.mark, pending=run.previous.pending)
    return SyncOutcome.from_result(result, run.client.stats, pages_read=run.client.pages_read)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=FathomResource,
    sync=sync,
    options=FathomOptions,
    description=(
        "Fathom meetings with their transcripts (speaker turns with timestamps), summaries "
        "and action items, one document per meeting on the day Fathom created it (a meeting "
        "recorded across midnight UTC belongs to the day it was saved); access is the "
        "calendar invitees and the recorder. A meeting still processing is fetched again by "
        "later runs until ready (written flagged transcript_missing after 7 days). A meeting "
        "no longer listed for its day leaves the index (each run lists its range; a daily "
        "listing covers the last 30 days)."
    ),
    schedule=Cadence(every_minutes=15, at_minute=7, stale_after_minutes=30),
    # Ids and times of the last 30 days, daily at 03:25 UTC (between the syncs at :22 and :37).
    reconcile=Reconciliation(list_ids, days=30, at_hour=3, at_minute=25),
    credentials_env={"api_key": "FATHOM_API_KEY"},
    docs_url="https://developers.fathom.ai/api-reference",
    transcripts=True,
)
