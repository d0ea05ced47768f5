"""What one Slack run reads and which messages become documents.

Two modes, chosen per run by the partition's high-water mark (HWM):
- full: no mark, or the day was already complete at the last run. Every top-level message in
  [start, end) and every reply of those threads (a reply belongs to its parent's day).
- incremental: today's open day with a mark. History has no updated-since filter, so the run
  re-reads a lookback window (default 7 days) and emits only what changed after the mark:
  new messages, edited messages (`edited.ts`), and threads with new replies (`latest_reply`).

Deletions: a deleted parent that still has replies stays in history as subtype `tombstone`
("This message was deleted.", replies kept) and a `message_deleted` record names the deleted
`deleted_ts`; either becomes a Tombstone, never a document, in both modes. A message deleted
without a trace simply disappears, so a full read also answers one Listing per channel read:
every message id it read (top level in [start, end) and every reply of those threads, skipped
subtypes such as joins included: they exist, and are never indexed either way), which lets
vector_index drop what it holds there and was not listed. An incremental run emits no listing:
it does not re-read every reply. Deletions older than any full re-read are found by the daily
reconciliation (reconcile.py).

Limitations (as in Airbyte's and dlt's Slack sources): an edit to an old reply in a thread with
no new reply, or a reply to a parent older than the lookback, is seen only by a full re-run of
that day. One document per message; replies carry their parent's `thread_ts`.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import Field, field_validator

from sync_pipelines import clock
from sync_pipelines.documents import ACCESS_ALL, Document, Listing, Tombstone
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.slack.client import SlackClient, checked_tiers
from sync_pipelines.sources.slack.messages import (
    SOURCE,
    can_read,
    channel_scope,
    doc_id,
    history,
    list_channels,
    message_ts,
    parse_ts,
    replies,
    signal,
)

SKIPPED_SUBTYPES = {
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "channel_unarchive",
    "group_join",
    "group_leave",
}
LISTING_REASON = "absent from a full read of its Slack channel"
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class SlackOptions(OptionsModel):
    """A workspace's options; `tier_limits_per_minute` is read by the client (client.py)."""

    channels: tuple[str, ...] = ()  # allow-list of channel names or ids; empty = all
    lookback_days: float = Field(default=7.0, ge=0)
    join_public: bool = True
    tier_limits_per_minute: dict[str, int] | None = None

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_names(cls, value: Any) -> tuple[str, ...]:
        """Names or ids, '#general' as 'general'."""
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
            raise ValueError("must be a list of channel names or ids")
        return tuple(c.lstrip("#") for c in value)

    @field_validator("tier_limits_per_minute")
    @classmethod
    def _known_tiers(cls, value: dict[str, int] | None) -> dict[str, int]:
        return checked_tiers(value or {}, "")


@dataclass(kw_only=True)
class SlackSyncResult(SyncResult):
    """The shared result with what the run read (reported as metadata under these names)."""

    channels_read: int
    messages_fetched: int
    replies_fetched: int
    threads_read: int
    messages_skipped: int
    user_cache_size: int


class _Counts:
    """The run's reading counters, under SlackSyncResult's names; every channel's thread adds
    to them."""

    def __init__(self) -> None:
        names = ("messages_fetched", "replies_fetched", "threads_read", "messages_skipped")
        self.totals = dict.fromkeys(names, 0)
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self.totals[name] += 1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


@dataclass
class _ChannelRead:
    """One channel's share of a run: its documents, the deletions Slack showed, and every
    message ts read (the listing of a full read)."""

    documents: list[Document] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)
    listing: Listing | None = None


class SlackSync:
    """One run's reader: channels, users and messages of one workspace, into documents."""

    def __init__(self, client: SlackClient, options: SlackOptions, max_workers: int = 4):
        self.client = client
        self.options = options
        self.max_workers = max_workers
        self.connection_id = client.connection.id
        self._users: dict[str, dict] = {}
        self._users_lock = threading.Lock()
        self._user_locks: dict[str, threading.Lock] = {}
        self._team_url = ""

    # -- lookups -----------------------------------------------------------------------------

    def _user(self, user_id: str) -> dict:
        """Name and email of a user, fetched once per run even when threads race for it."""
        with self._users_lock:
            if user_id in self._users:
                return self._users[user_id]
            user_lock = self._user_locks.setdefault(user_id, threading.Lock())
        with user_lock:
            if user_id not in self._users:
                user = self.client.call("users.info", user=user_id).get("user") or {}
                profile = user.get("profile") or {}
                self._users[user_id] = {
                    "name": profile.get("real_name")
                    or user.get("real_name")
                    or user.get("name")
                    or user_id,
                    "email": (profile.get("email") or "").lower(),
                    "is_bot": bool(user.get("is_bot")),
                }
            return self._users[user_id]

    def _access(self, channel: dict) -> tuple[str, ...]:
        if not channel.get("is_private"):
            return (ACCESS_ALL,)
        emails = set()
        for user_id in self.client.paginate(
            "conversations.members", "members", channel=channel["id"], limit=1000
        ):
            email = self._user(user_id)["email"]
            if email:
                emails.add(email)
        return tuple(sorted(emails))

    # -- the run -----------------------------------------------------------------------------

    def run(self, window: SyncWindow, high_water_mark: float | None, now: float | None = None):
        bounds = window.bounds(high_water_mark, now=now)
        latest, now, since = bounds.upper, bounds.now, bounds.mark
        scan_start = window.start_epoch
        if bounds.incremental and self.options.lookback_days > 0:
            scan_start = min(scan_start, now - self.options.lookback_days * 86400)

        auth = self.client.call("auth.test")  # fails fast on a bad token
        self._team_url = str(auth.get("url") or "").rstrip("/")
        channels = list_channels(self.client, self.options)
        counts = _Counts()

        def read(channel: dict) -> _ChannelRead:
            return self._read_channel(channel, window, scan_start, latest, now, since, counts)

        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            reads = list(pool.map(read, channels))
        return SlackSyncResult(
            documents=[d for r in reads for d in r.documents],
            tombstones=[t for r in reads for t in r.tombstones],
            listings=[r.listing for r in reads if r.listing is not None],
            high_water_mark=latest,
            mode=bounds.mode,
            channels_read=len(channels),
            user_cache_size=len(self._users),
            **counts.totals,
        )

    def _read_channel(self, channel, window, scan_start, latest, now, since, counts):
        """One channel; a full read (`since` None) also lists every message it read over
        [window start, latest), as of when the read began."""
        read = _ChannelRead()
        listed_at = clock.now_epoch()
        if not can_read(self.client, self.options, channel):
            return read
        access = self._access(channel)
        for msg in history(self.client, channel["id"], scan_start, latest):
            counts.add("messages_fetched")
            ts = parse_ts(msg.get("ts"), "message")
            if ts >= latest:
                continue
            live = self._file(channel, msg, now, read)
            in_window = window.start_epoch <= ts < window.end_epoch
            edited = parse_ts((msg.get("edited") or {}).get("ts", 0), "edit")
            new_replies = parse_ts(msg.get("latest_reply", 0), "latest_reply")
            if since is None:
                emit, replies_since = in_window, (None if in_window else False)
            else:
                is_new = in_window and ts > since
                emit = is_new or edited > since
                replies_since = None if is_new else (since if new_replies > since else False)
            if emit and live:
                read.documents.extend(self._documents(channel, access, [msg], counts))
            if replies_since is not False and int(msg.get("reply_count") or 0) > 0:
                read.documents.extend(
                    self._thread(channel, access, msg, replies_since, now, counts, read)
                )
        if since is None and latest > window.start_epoch:
            read.listing = Listing(
                scope=channel_scope(self.connection_id, channel["id"]),
                start=window.start_epoch,
                end=latest,
                doc_ids={doc_id(self.connection_id, channel["id"], ts) for ts in read.listed},
                listed_at=listed_at,
                reason=LISTING_REASON,
            )
        return read

    def _file(self, channel: dict, msg: dict, now: float, read: _ChannelRead) -> bool:
        """Files a message read: a deletion signal as a tombstone (False: no document), any
        other message as listed (True). A tombstone says when it was seen, a message_deleted
        when the deletion happened (its own ts)."""
        found = signal(msg)
        if found is None:
            read.listed.add(message_ts(msg))
            return True
        deleted_ts, reason = found
        seen_at = now if reason == "tombstone" else parse_ts(msg.get("ts"), reason)
        read.tombstones.append(
            Tombstone(doc_id(self.connection_id, channel["id"], deleted_ts), reason, seen_at)
        )
        return False

    def _thread(self, channel, access, parent, since, now, counts, read) -> list[Document]:
        """Replies of one thread: all of them (since=None) or those new/edited after `since`.

        Replies belong to their parent's day, so they are read up to `now`, not the window end
        (a later one is still listed: it exists).
        """
        counts.add("threads_read")
        kept = []
        for reply in replies(self.client, channel["id"], parent["ts"]):
            counts.add("replies_fetched")
            ts = parse_ts(reply.get("ts"), "reply")
            if not self._file(channel, reply, now, read) or ts >= now:
                continue
            edited = parse_ts((reply.get("edited") or {}).get("ts", 0), "edit")
            if since is None or ts > since or edited > since:
                kept.append(reply)
        return self._documents(channel, access, kept, counts)

    def _documents(self, channel, access, messages, counts) -> list[Document]:
        docs = []
        for msg in messages:
            text = (msg.get("text") or "").strip()
            if msg.get("subtype") in SKIPPED_SUBTYPES or not text:
                counts.add("messages_skipped")
                continue
            docs.append(self._document(channel, access, msg, text))
        return docs

    def _document(self, channel: dict, access: tuple[str, ...], msg: dict, text: str) -> Document:
        ts_str = str(msg["ts"])
        ts = float(ts_str)
        user_id = msg.get("user") or ""
        if user_id:
            author = self._user(user_id)["name"]
        else:
            author = msg.get("username") or msg.get("bot_id") or "unknown"
        text = _MENTION.sub(lambda m: "@" + self._user(m.group(1))["name"], text)
        thread_ts = str(msg.get("thread_ts") or "")
        is_reply = bool(thread_ts) and thread_ts != ts_str
        edited_ts = (msg.get("edited") or {}).get("ts")
        url = f"{self._team_url}/archives/{channel['id']}/p{ts_str.replace('.', '')}"
        if is_reply:
            url += f"?thread_ts={thread_ts}&cid={channel['id']}"
        metadata = {
            "channel_id": channel["id"],
            "channel_name": channel.get("name", ""),
            "is_private": bool(channel.get("is_private")),
            "user_id": user_id,
            "user_name": author,
            "ts": ts_str,
            "thread_ts": thread_ts,
            "is_reply": is_reply,
        }
        if msg.get("subtype"):
            metadata["subtype"] = msg["subtype"]
        if msg.get("reply_count"):
            metadata["reply_count"] = int(msg["reply_count"])
        return Document(
            doc_id=doc_id(self.connection_id, channel["id"], ts_str),
            source=SOURCE,
            connection=self.connection_id,
            title=f"#{channel.get('name', channel['id'])} · {author}"
            + (" (thread reply)" if is_reply else ""),
            text=text,
            url=url,
            author=author,
            created_at=_iso(ts),
            updated_at=_iso(float(edited_ts)) if edited_ts else _iso(ts),
            timestamp_epoch=ts,
            access=access,
            metadata=metadata,
        )
