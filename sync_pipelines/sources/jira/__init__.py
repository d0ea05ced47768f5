"""Jira Cloud: issues of every visible project, with descriptions and recent comments."""

from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.jira.client import JiraResource
from sync_pipelines.sources.jira.sync import SOURCE as NAME
from sync_pipelines.sources.jira.sync import JiraOptions, JiraSync, JiraSyncResult


def sync(run: SourceRun) -> JiraSyncResult:
    return JiraSync(run.client, run.options, run.connection.id).run(run.window, run.mark)


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
    schedule=Cadence(every_minutes=30, at_minute=5, stale_after_minutes=60),
    credentials_env={"api_token": "JIRA_API_TOKEN", "email": "JIRA_EMAIL"},
    docs_url="https://developer.atlassian.com/cloud/jira/platform/rest/v3/",
)
