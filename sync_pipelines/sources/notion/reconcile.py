"""Notion's daily reconciliation: the pages that still exist, for deletions without a signal.

A page deleted for good or no longer shared with the integration simply leaves search (so
does a trashed one: the sync's trash search sees those, but only while their last edit lies in
a run's window). Once a day this walks search (pages only, newest edit first, the client's page
size, 100 by default: Notion's largest) down to the window's start: ids and edit times only, no
block reads, no user lookups. Trashed pages are not listed, so they leave the index too.

Search pages by cursor over an order that edits change: a page edited while the walk runs
jumps above the cursor and would be missed, so a second walk from the top collects what was
edited since the listing began (usually one call). Notion's search indexes edits with a lag:
the listing's range ends `INCREMENTAL_OVERLAP_S` before it began, so it never judges a page
edited in the last minutes. Any failed, malformed or truncated page raises once the client's
retries are spent, so a failed listing deletes nothing.
"""

from __future__ import annotations

from sync_pipelines import clock
from sync_pipelines.documents import Listing
from sync_pipelines.errors import MalformedResponseError
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.notion.client import NotionClient
from sync_pipelines.sources.notion.sync import (
    INCREMENTAL_OVERLAP_S,
    doc_id,
    edited_at,
    is_page,
    scope,
    trash_signal,
)

RECONCILE_REASON = "absent from Notion's search in the daily reconciliation"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing of the connection."""
    return NotionLister(run.client, run.connection.id).run(run.window)


class NotionLister:
    """Lists the ids of one integration's live pages edited in a window."""

    def __init__(self, client: NotionClient, connection_id: str):
        self.client = client
        self.connection_id = connection_id

    def run(self, window: SyncWindow) -> list[Listing]:
        """One Listing of [window start, min(window end, now) - lag); none if that is empty."""
        listed_at = clock.now_epoch()
        bounds = window.bounds(None, now=listed_at)
        end = bounds.upper - INCREMENTAL_OVERLAP_S
        if end <= bounds.lower:
            return []
        live = self._live_since(bounds.lower) | self._live_since(listed_at - INCREMENTAL_OVERLAP_S)
        return [
            Listing(
                scope=scope(self.connection_id),
                start=bounds.lower,
                end=end,
                doc_ids={doc_id(self.connection_id, page_id) for page_id in live},
                listed_at=listed_at,
                reason=RECONCILE_REASON,
            )
        ]

    def _live_since(self, lower: float) -> set[str]:
        """Ids of the pages search answers, newest edit first, down to `lower` (those newer
        than the range too: a listing may over-include), trashed ones left out."""
        found: set[str] = set()
        for page in self.client.search_pages():
            if not is_page(page):  # a listing must not guess what it could not read
                raise MalformedResponseError(f"notion search answered a non-page: {page!r:.200}")
            if edited_at(page) < lower:
                break
            if trash_signal(page) is None:
                found.add(page["id"])
        return found
