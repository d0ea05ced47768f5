"""Slack: channels, messages and thread replies of a workspace, and their deletions."""

from sync_pipelines.documents import Document
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines.sources.slack.reconcile import list_ids
from sync_pipelines.sources.slack.sync import SOURCE as NAME
from sync_pipelines.sources.slack.sync import SlackOptions, SlackSync, SlackSyncResult


def sync(run: SourceRun) -> SlackSyncResult:
    reader = SlackSync(run.client, run.options, max_workers=run.resource.max_workers)
    return reader.run(run.window, run.mark)


def partition_time(doc: Document) -> float:
    """A reply belongs to its parent's day (sync.py), so it counts there."""
    return float(doc.metadata.get("thread_ts") or doc.timestamp_epoch)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=SlackResource,
    sync=sync,
    options=SlackOptions,
    description=(
        "Slack messages and thread replies of every public channel and every private channel "
        "the bot is in, one document per message; today's partition re-reads a lookback "
        "window for edits and new replies. Deleted messages leave the index: Slack's "
        "tombstone and message_deleted records, a full re-read of a day, and a daily "
        "reconciliation of the last 30 days show them."
    ),
    schedule=Cadence(every_minutes=15, at_minute=1, stale_after_minutes=30),
    credentials_env={"token": "SLACK_BOT_TOKEN"},
    docs_url="https://api.slack.com/methods/conversations.history",
    partition_time=partition_time,
    # Daily at 03:05 UTC: staggered off the other sources' reconciliations.
    reconcile=Reconciliation(list_ids=list_ids, at_minute=5),
    # The sandbox enforces no rate limit unless asked to.
    demo_options={"tier_limits_per_minute": {"tier2": 0, "tier3": 0, "tier4": 0}},
)
