"""CallRail's daily reconciliation: which calls, form submissions and conversations of the
last 30 days are still listed.

CallRail's API shows no deletion: a call marked as spam (or removed by support) is only no
longer listed. Once a day this lists the window with the sync's own listings, ids and times
only (calls without `fields=`, pages of the largest size, 250): for a typical account a few
dozen requests a day against the 10,000 allowed. A failed or malformed page raises once the
client's retries are spent, so a partial listing lists, and deletes, nothing. The warehouse
rows of such records stay as they were loaded (the reconciliation feeds the index only).
"""

from __future__ import annotations

from sync_pipelines.documents import Document, Listing
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.callrail.client import MAX_PAGE_SIZE, SOURCE, CallRailClient
from sync_pipelines.sources.callrail.tables import CallRailOptions, record_time

REASON = "no longer listed by CallRail in the daily reconciliation (marked spam or removed)"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    options = run.options if isinstance(run.options, CallRailOptions) else CallRailOptions()
    client: CallRailClient = run.client
    found: set[str] = set()
    for kind in options.objects:
        at = record_time(kind)
        for page in _listing(client, kind, bounds.lower, bounds.upper):
            found |= {
                Document.make_id(SOURCE, run.connection.id, f"{kind}/{r['id']}")
                for r in page
                if bounds.lower <= at(r) < bounds.upper
            }
    listing = Listing.of_connection(
        SOURCE, run.connection.id, bounds.lower, bounds.upper, found, bounds.now, REASON
    )
    return [listing]


def _listing(client: CallRailClient, kind: str, start: float, end: float):
    if kind == "calls":
        return client.calls(start, end, MAX_PAGE_SIZE, fields=())
    if kind == "form_submissions":
        return client.form_submissions(start, end, MAX_PAGE_SIZE)
    return client.conversations(start, end, MAX_PAGE_SIZE)
