"""The Slack calls and message shapes the sync (sync.py) and the reconciliation
(reconcile.py) share: which channels a run reads, how history and threads are paged, a
message's doc id, and what Slack leaves of a deleted message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sync_pipelines.documents import Document
from sync_pipelines.resilience import MalformedResponseError
from sync_pipelines.sources.slack.client import SlackClient

if TYPE_CHECKING:
    from sync_pipelines.sources.slack.sync import SlackOptions

SOURCE = "slack"


def parse_ts(value: object, what: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedResponseError(f"slack {what} has a malformed ts {value!r}") from None


def message_ts(msg: dict, what: str = "message") -> str:
    """A message's ts as Slack spells it (a doc id keeps it verbatim), checked to be one."""
    parse_ts(msg.get("ts"), what)
    return str(msg["ts"])


def doc_id(connection_id: str, channel_id: str, ts: str) -> str:
    return Document.make_id(SOURCE, connection_id, f"{channel_id}:{ts}")


def channel_scope(connection_id: str, channel_id: str) -> str:
    """The doc_id prefix of every message of a channel, replies included (a Listing's scope)."""
    return doc_id(connection_id, channel_id, "")


def signal(msg: dict) -> tuple[str, str] | None:
    """(deleted ts, reason) when `msg` is what Slack leaves of a deleted message: a `tombstone`
    is the deleted parent itself (kept for its replies, which live on); a `message_deleted`
    names the deleted message in `deleted_ts`. None for any other message."""
    subtype = msg.get("subtype")
    if subtype == "tombstone":
        return message_ts(msg, "tombstone"), "tombstone"
    if subtype == "message_deleted":
        parse_ts(msg.get("deleted_ts"), "message_deleted")
        return str(msg["deleted_ts"]), "message_deleted"
    return None


def list_channels(client: SlackClient, options: SlackOptions) -> list[dict]:
    """The channels a run reads: unarchived, public or private, in the allow-list if any."""
    wanted = set(options.channels)
    channels = []
    for ch in client.paginate(
        "conversations.list",
        "channels",
        types="public_channel,private_channel",
        exclude_archived="true",
        limit=1000,
    ):
        if ch.get("is_archived"):
            continue
        if wanted and ch.get("id") not in wanted and ch.get("name") not in wanted:
            continue
        channels.append(ch)
    return channels


def can_read(client: SlackClient, options: SlackOptions, channel: dict) -> bool:
    """Whether the bot reads `channel`: it is a member, or joins it (public, `join_public`)."""
    if channel.get("is_member"):
        return True
    if channel.get("is_private") or not options.join_public:
        return False
    client.call("conversations.join", channel=channel["id"])
    return True


def history(client: SlackClient, channel_id: str, oldest: float, latest: float) -> Iterator[dict]:
    """Top-level messages of [oldest, latest], both bounds included, newest first."""
    return client.paginate(
        "conversations.history",
        "messages",
        channel=channel_id,
        oldest=f"{oldest:.6f}",
        latest=f"{latest:.6f}",
        inclusive="true",
        limit=client.page_size,
    )


def replies(client: SlackClient, channel_id: str, parent_ts: str) -> Iterator[dict]:
    """Every reply of a thread, oldest first, without the parent Slack repeats first."""
    for reply in client.paginate(
        "conversations.replies", "messages", channel=channel_id, ts=parent_ts, limit=1000
    ):
        if reply.get("ts") != parent_ts:
            yield reply
