"""The `slack` asset: messages of every visible channel of each workspace, by day."""


from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.documents import Document
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceSpec, SyncOutcome, build_source_asset
from sync_pipelines.sources.slack.sync import SOURCE, SlackOptions, SlackSync


def sync_slack(
    context: AssetExecutionContext,
    connection: Connection,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    resource = context.resources.slack
    options = SlackOptions.from_connection(connection.options)
    client = resource.client_for(connection)
    result = SlackSync(client, options, max_workers=resource.max_workers).run(
        window, previous.high_water_mark
    )
    return SyncOutcome.from_result(result, client.stats)


def partition_time(doc: Document) -> float:
    """A reply belongs to its parent's day (sync.py), so it counts there."""
    return float(doc.metadata.get("thread_ts") or doc.timestamp_epoch)


slack_asset = build_source_asset(
    SourceSpec(
        name=SOURCE,
        sync_resource_key="slack",
        description=(
            "Slack messages and thread replies of every public channel and every private channel "
            "the bot is in, one document per message; today's partition re-reads a lookback "
            "window for edits and new replies."
        ),
        sync=sync_slack,
        kinds=frozenset({"slack"}),
        partition_time=partition_time,
    )
)
