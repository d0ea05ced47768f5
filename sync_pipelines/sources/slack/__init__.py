"""Slack: channels, messages and thread replies of a workspace."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.documents import Document
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SyncOutcome
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines.sources.slack.sync import SOURCE as NAME
from sync_pipelines.sources.slack.sync import SlackOptions, SlackSync


def sync(
    context: AssetExecutionContext,
    connection: Connection,
    options: SlackOptions,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    resource = context.resources.slack
    client = resource.client_for(connection)
    result = SlackSync(client, options, max_workers=resource.max_workers).run(
        window, previous.high_water_mark
    )
    return SyncOutcome.from_result(result, client.stats)


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
        "window for edits and new replies."
    ),
    cadence_minutes=15,
    offset_minutes=1,
    freshness_minutes=30,
    credentials_env={"token": "SLACK_BOT_TOKEN"},
    docs_url="https://api.slack.com/methods/conversations.history",
    kinds=frozenset({"slack"}),
    partition_time=partition_time,
    # The sandbox enforces no rate limit unless asked to.
    demo_options={"tier_limits_per_minute": {"tier2": 0, "tier3": 0, "tier4": 0}},
)
