"""Gmail's daily reconciliation: which messages of the last 30 days still exist.

The 15-minute runs see deletions in the history (messagesDeleted, moves to SPAM/TRASH), and a
full read of a day lists that day. A deletion the history no longer holds (history kept for
about a week; a cursor that expired) is caught here: once a day, messages.list over the whole
window (ids only, the largest pages, per allowed label when the connection has an allow-list)
answers one Listing. Any failed or malformed page raises once the client's retries are spent,
so a partial listing lists, and deletes, nothing.
"""

from __future__ import annotations

from sync_pipelines.documents import Listing
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.gmail.client import GmailResource
from sync_pipelines.sources.gmail.sync import GmailSync

RECONCILE_REASON = "no longer listed by Gmail in the daily reconciliation"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the window."""
    bounds = run.window.bounds(None)
    if bounds.empty:
        return []
    lister = GmailSync(run.client, run.options, run.connection.id)
    lister.prepare()
    ids = lister.list_ids(bounds.lower, bounds.upper, GmailResource.MAX_PAGE_SIZE)
    return [
        Listing(
            scope=lister.doc_id(""),
            start=bounds.lower,
            end=bounds.upper,
            doc_ids=frozenset(lister.doc_id(i) for i in ids),
            listed_at=bounds.now,
            reason=RECONCILE_REASON,
        )
    ]
