"""Gong: recorded calls with their transcripts, speakers and CRM context."""

from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.gong.client import SOURCE as NAME
from sync_pipelines.sources.gong.client import GongResource
from sync_pipelines.sources.gong.reconcile import list_ids
from sync_pipelines.sources.gong.sync import GongOptions, GongSync


def sync(run: SourceRun) -> SyncOutcome:
    reader = GongSync(run.client, run.options, run.connection.id)
    result = reader.run(run.window, run.mark, pending=run.previous.pending)
    return SyncOutcome.from_result(result, run.client.stats, pages_read=run.client.pages_read)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=GongResource,
    sync=sync,
    options=GongOptions,
    description=(
        "Gong calls, one document per call on the UTC day it started (Gong sends local "
        "offsets): title, host and participants, CRM account and opportunity, and the "
        "transcript in speaker turns (speakers resolved from the call's parties). Access: "
        "the internal participants' emails (option access: all shares non-private calls "
        "company-wide). A call not transcribed yet is fetched again by later runs until it "
        "is (written flagged transcript_missing after 7 days). A call no longer listed for "
        "its day leaves the index (each run lists its range; a daily listing covers the last "
        "30 days). Basic auth with an access key and secret; 3 calls/s, 10,000 a day."
    ),
    schedule=Cadence(every_minutes=15, at_minute=3, stale_after_minutes=30),
    # Ids and start times of the last 30 days, daily at 03:10 UTC (between the syncs at :03/:18).
    reconcile=Reconciliation(list_ids, days=30, at_hour=3, at_minute=10),
    credentials_env={
        "access_key": "GONG_ACCESS_KEY",
        "access_key_secret": "GONG_ACCESS_KEY_SECRET",
    },
    docs_url="https://help.gong.io/apidocs/introduction",
    group="knowledge",
    transcripts=True,
)
