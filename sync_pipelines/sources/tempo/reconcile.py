"""Tempo's daily reconciliation: which worklogs updated in its window (the last year) still exist.

Tempo shows a deletion only by absence: a deleted worklog leaves `GET /4/worklogs` (and
`GET /4/worklogs/{id}` answers 404, one call per id: not used here). A worklog's partition
time is its `updatedAt`, which only grows, so every worklog that exists with `updatedAt` in
the window is in `GET /4/worklogs?updatedFrom=<window start>`: one listing, ids only, in pages
of the largest `limit` (5000), no Jira lookups. Worklogs of inactive projects are listed too;
listing more than the index holds is harmless. Any failed, malformed, truncated or shifted
page raises once the client's retries are spent (client.worklog_ids), so a partial listing
lists, and deletes, nothing.
"""

from __future__ import annotations

from sync_pipelines.documents import Document, Listing
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.tempo.sync import SOURCE

RECONCILE_REASON = "no longer listed by Tempo in the daily reconciliation"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    ids = run.client.worklog_ids(updated_from=bounds.lower)
    connection_id = run.connection.id
    return [
        Listing(
            scope=Document.make_id(SOURCE, connection_id, ""),
            start=bounds.lower,
            end=bounds.upper,
            doc_ids=frozenset(Document.make_id(SOURCE, connection_id, i) for i in ids),
            listed_at=bounds.now,
            reason=RECONCILE_REASON,
        )
    ]
