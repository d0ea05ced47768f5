"""Jira's daily reconciliation: which issues updated in the window still exist in the
connection's projects.

Jira shows a deletion only by absence: a deleted issue leaves search (and `GET issue/{id}`
answers 404, one call per issue: not used here). An issue moved to another project keeps its
id and gets a new key there. Documents are keyed by the id (sync.issue_doc_id), so a move
within the projects the connection reads stays listed (the move updates the issue, and the
next sync rewrites it under its new key), and a move out of them leaves the listing: its
document is deleted.

An issue's partition time is its `updated`, which only grows, so every issue that exists
with `updated` in the window matches `updated >= <window start>`: one enhanced search over
the connection's projects (option `projects`, else no project clause: every project the
account can see, as the sync reads), ids only, in pages of up to 5000. The JQL date is the
window start in the account's time zone (as the sync writes it, floored to the minute) less
a day, which also covers a repeated hour and the search index's lag: the listing may hold
more than the window (harmless), never less. Any failed, malformed or cut page raises once
the client's retries are spent (client.search_ids), so a partial listing deletes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sync_pipelines.documents import Listing
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.jira.client import JiraRequestError
from sync_pipelines.sources.jira.sync import issue_doc_id, jql_time

RECONCILE_REASON = "no longer found by Jira search in the connection's projects"
WIDEN_S = 86_400


def listing_jql(projects: Sequence[str], since: float, tz: ZoneInfo) -> str:
    """Issues of `projects` (all visible ones when empty) updated since a day before
    `since`, oldest created first: edits during the listing move no issue between pages."""
    clauses = [f'updated >= "{jql_time(since - WIDEN_S, tz)}"']
    if projects:
        clauses.insert(0, "project in (" + ", ".join(f'"{p}"' for p in projects) + ")")
    return " AND ".join(clauses) + " ORDER BY created ASC"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    connection_id, projects = run.connection.id, run.options.projects
    jql = listing_jql(projects, bounds.lower, run.client.timezone())
    try:
        ids = frozenset(issue_doc_id(connection_id, i) for i in run.client.search_ids(jql))
    except JiraRequestError as exc:
        if exc.status == 400 and projects:
            raise ValueError(
                f"jira connection '{connection_id}': option 'projects' {list(projects)} "
                f"cannot be searched: {exc}"
            ) from exc
        raise
    return [
        Listing(
            scope=issue_doc_id(connection_id, ""),
            start=bounds.lower,
            end=bounds.upper,
            doc_ids=ids,
            listed_at=bounds.now,
            reason=RECONCILE_REASON,
        )
    ]
