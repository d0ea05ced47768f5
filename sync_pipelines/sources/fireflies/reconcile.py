"""Fireflies' daily reconciliation: which meetings of the last 30 days still exist.

A deleted meeting leaves no trace: it is only no longer listed. The hourly sync lists today
(and a re-run lists its day), so once a day this lists the whole window with the sync's
`transcripts(fromDate, toDate)` query and paging, asking for `id` and `date` only (no
sentences, no summary: pages of the largest size, 50). Any failed, malformed or truncated
page raises once the client's retries are spent, and so does a listing whose pages shifted
under a deletion (client.TranscriptPages): a partial listing lists, and deletes, nothing.
"""

from __future__ import annotations

from sync_pipelines.documents import Document, Listing
from sync_pipelines.errors import SourceError
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.fireflies.client import SOURCE, FirefliesClient
from sync_pipelines.sources.fireflies.sync import meeting_date

RECONCILE_REASON = "no longer listed by Fireflies in the daily reconciliation"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    return [list_meetings(run.client, run.connection.id, bounds.lower, bounds.upper, bounds.now)]


def list_meetings(
    client: FirefliesClient, connection_id: str, start: float, end: float, listed_at: float
) -> Listing:
    """Every meeting dated in [start, end), complete or raising."""
    pages = client.transcript_ids(start, end)
    found = {
        Document.make_id(SOURCE, connection_id, str(t["id"]))
        for t in pages
        if start <= meeting_date(t) < end
    }
    if not pages.complete:
        raise SourceError(
            f"{client.label}: a meeting was deleted while the transcripts were paged, so one "
            "may have been skipped; nothing is listed"
        )
    return Listing.of_connection(
        SOURCE, connection_id, start, end, found, listed_at, RECONCILE_REASON
    )
