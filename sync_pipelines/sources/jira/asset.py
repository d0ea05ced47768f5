"""The `jira` asset: issues of each Jira Cloud site, by the day they were last updated."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceSpec, SyncOutcome, build_source_asset
from sync_pipelines.sources.jira.sync import SOURCE, JiraOptions, JiraSync


def sync_jira(
    context: AssetExecutionContext,
    connection: Connection,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    options = JiraOptions.from_connection(connection.options)
    client = context.resources.jira.client_for(connection)
    try:
        result = JiraSync(client, options, connection.id).run(
            window, previous.high_water_mark
        )
    finally:
        client.close()
    return SyncOutcome.from_result(result, client.stats)


jira_asset = build_source_asset(
    SourceSpec(
        name=SOURCE,
        sync_resource_key="jira",
        description=(
            "Jira Cloud issues of every project the account can see (or a configured list), "
            "one document per issue with its description and recent comments, partitioned by "
            "the day the issue was last updated."
        ),
        sync=sync_jira,
        kinds=frozenset({"jira"}),
    )
)
