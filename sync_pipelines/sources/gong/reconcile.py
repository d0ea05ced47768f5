"""Gong's daily reconciliation: which calls of the last 30 days still exist.

A call deleted in Gong leaves no trace: it is only no longer listed. Each sync lists its own
range (today's runs their lookback, a re-run its day), so once a day this lists the whole
window with the cheapest call Gong has, `GET /v2/calls` (metadata only: no parties, context or
transcripts), paged by cursor. Any failed or malformed page raises once the client's retries
are spent, so a partial listing lists, and deletes, nothing; Gong's 404 "No calls found" is an
empty window (vector_index refuses a listing that would empty most of what it holds).
"""

from __future__ import annotations

from sync_pipelines.documents import Document, Listing
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.gong.client import SOURCE, GongClient, started_epoch

RECONCILE_REASON = "no longer listed by Gong in the daily reconciliation"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    workspace = run.options.workspace_id if run.options is not None else None
    return [
        list_calls(run.client, run.connection.id, bounds.lower, bounds.upper, bounds.now, workspace)
    ]


def list_calls(
    client: GongClient,
    connection_id: str,
    start: float,
    end: float,
    listed_at: float,
    workspace_id: str | None = None,
) -> Listing:
    """Every call started in [start, end), complete or raising."""
    found = {
        Document.make_id(SOURCE, connection_id, str(call["id"]))
        for call in client.call_list(start, end, workspace_id)
        if start <= started_epoch(call["started"]) < end
    }
    return Listing.of_connection(
        SOURCE, connection_id, start, end, found, listed_at, RECONCILE_REASON
    )
