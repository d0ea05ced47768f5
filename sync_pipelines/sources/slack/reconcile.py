"""Slack's daily reconciliation: the message ids that still exist, for deletions without a trace.

A deleted message without replies simply vanishes from conversations.history, and a deleted
reply from conversations.replies: only absence shows them. A full re-read of a day lists what
it read (sync.py), but the 15-minute schedule re-reads only today. Once a day this lists, for
each channel the sync reads (same selection and join rule), every top-level message of the
window and every reply of those threads: ids only, with the sync's calls and paging, no user
lookups and no documents. Any failed, malformed or truncated page raises once the client's
retries are spent, so a partial read lists (and deletes) nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sync_pipelines import clock
from sync_pipelines.documents import Listing
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.slack.client import SlackClient
from sync_pipelines.sources.slack.messages import (
    can_read,
    channel_scope,
    doc_id,
    history,
    list_channels,
    message_ts,
    replies,
    signal,
)
from sync_pipelines.sources.slack.sync import SlackOptions

RECONCILE_REASON = "absent from Slack's history in the daily reconciliation"


def list_ids(run: SourceRun) -> list[Listing]:
    """The reconciliation entry (declaration.Reconciliation): one Listing per channel read."""
    lister = SlackLister(run.client, run.options, max_workers=run.resource.max_workers)
    return lister.run(run.window)


class SlackLister:
    """Lists one workspace's message ids over a window, channels in parallel."""

    def __init__(self, client: SlackClient, options: SlackOptions, max_workers: int = 4):
        self.client = client
        self.options = options
        self.max_workers = max_workers

    def run(self, window: SyncWindow) -> list[Listing]:
        """Every channel's listing of [window start, min(window end, now)); raises if any
        channel's listing failed."""
        bounds = window.bounds(None)
        if bounds.empty:
            return []
        channels = list_channels(self.client, self.options)

        def listing(channel: dict) -> Listing | None:
            return self._list_channel(channel, bounds.lower, bounds.upper)

        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            found = list(pool.map(listing, channels))
        return [item for item in found if item is not None]

    def _list_channel(self, channel: dict, start: float, end: float) -> Listing | None:
        """Top-level messages of [start, end) and every reply of their threads; deletion
        signals (a tombstone parent, message_deleted) are not messages, their replies are."""
        listed_at = clock.now_epoch()
        if not can_read(self.client, self.options, channel):
            return None
        found: set[str] = set()
        for msg in history(self.client, channel["id"], start, end):
            ts = message_ts(msg)
            if float(ts) >= end:
                continue
            if signal(msg) is None:
                found.add(ts)
            if int(msg.get("reply_count") or 0) > 0:
                for reply in replies(self.client, channel["id"], ts):
                    if signal(reply) is None:
                        found.add(message_ts(reply, "reply"))
        connection_id = self.client.connection.id
        return Listing(
            scope=channel_scope(connection_id, channel["id"]),
            start=start,
            end=end,
            doc_ids={doc_id(connection_id, channel["id"], ts) for ts in found},
            listed_at=listed_at,
            reason=RECONCILE_REASON,
        )
