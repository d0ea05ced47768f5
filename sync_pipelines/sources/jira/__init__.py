"""Jira Cloud: issues of every visible project, with descriptions and recent comments."""

from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.jira.client import JiraResource
from sync_pipelines.sources.jira.reconcile import list_ids
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
        "the day the issue was last updated. Deleted issues, and issues moved out of the "
        "connection's projects, leave the index by the daily id reconciliation."
    ),
    schedule=Cadence(every_minutes=30, at_minute=5, stale_after_minutes=60),
    credentials_env={"api_token": "JIRA_API_TOKEN", "email": "JIRA_EMAIL"},
    docs_url="https://developer.atlassian.com/cloud/jira/platform/rest/v3/",
    # Jira shows a deletion (or a move out of the projects) only by absence from search. An
    # ids-only page holds 5,000 issues, so the daily listing covers every issue updated in
    # the last 10 years (in practice: all), not a month: old issues get deleted too.
    reconcile=Reconciliation(list_ids=list_ids, days=3650, at_minute=40),
)
