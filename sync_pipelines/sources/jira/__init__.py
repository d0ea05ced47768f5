"""Jira Cloud: issues of every visible project, with descriptions and recent comments."""

from dagster import AssetExecutionContext

from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SyncOutcome
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.jira.client import JiraResource
from sync_pipelines.sources.jira.sync import SOURCE as NAME
from sync_pipelines.sources.jira.sync import JiraOptions, JiraSync


def sync(
    context: AssetExecutionContext,
    connection: Connection,
    options: JiraOptions,
    window: SyncWindow,
    previous: Previous,
) -> SyncOutcome:
    client = context.resources.jira.client_for(connection)
    try:
        result = JiraSync(client, options, connection.id).run(window, previous.high_water_mark)
    finally:
        client.close()
    return SyncOutcome.from_result(result, client.stats)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=JiraResource,
    sync=sync,
    options=JiraOptions,
    description=(
        "Jira Cloud issues of every project the account can see (or a configured list), "
        "one document per issue with its description and recent comments, partitioned by "
        "the day the issue was last updated."
    ),
    cadence_minutes=30,
    offset_minutes=5,
    freshness_minutes=60,
    credentials_env={"api_token": "JIRA_API_TOKEN", "email": "JIRA_EMAIL"},
    docs_url="https://developer.atlassian.com/cloud/jira/platform/rest/v3/",
    kinds=frozenset({"jira"}),
)
