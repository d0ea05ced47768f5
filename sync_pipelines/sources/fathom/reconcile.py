"""Fathom's daily reconciliation: which meetings of the last 30 days still exist.

A deleted meeting leaves no trace: it is only no longer listed. The 15-minute sync lists
today's range (and a re-run lists its day); once a day this lists the whole window by
`created_at` with the cheapest call Fathom has, the meetings listing without any `include_*`
content. It lists twice and answers the union: were Fathom's cursor a position, a meeting
deleted during one pass could hide a later one from that pass, never from both (a meeting
deleted meanwhile may stay listed: the next day's run sees it gone). Any failed or malformed
page raises once the client's retries are spent: a partial listing lists, and deletes, nothing.
"""

from __future__ import annotations

from sync_pipelines.documents import Document, Listing
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.fathom.client import SOURCE, FathomClient, created_at

RECONCILE_REASON = "no longer listed by Fathom in the daily reconciliation"
PASSES = 2


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    filters = run.options.filters() if run.options is not None else {}
    return [
        list_meetings(
            run.client, run.connection.id, bounds.lower, bounds.upper, bounds.now, filters
        )
    ]


def list_meetings(
    client: FathomClient,
    connection_id: str,
    start: float,
    end: float,
    listed_at: float,
    filters: dict | None = None,
) -> Listing:
    """Every meeting created in [start, end), complete or raising."""
    found: set[str] = set()
    for _ in range(PASSES):
        for meeting in client.meetings(start, end, (), **(filters or {})):
            if start <= created_at(meeting) < end:
                found.add(Document.make_id(SOURCE, connection_id, str(meeting["recording_id"])))
    return Listing.of_connection(
        SOURCE, connection_id, start, end, found, listed_at, RECONCILE_REASON
    )
