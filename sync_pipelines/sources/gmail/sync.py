"""What one Gmail run reads and which messages become documents.

A connection is one mailbox. Two modes, chosen per run:

- full: the partition's first run of a day, any run of a day that was already complete at
  its last run, any multi-day run (a backfill), and the fallback when the stored historyId
  has expired (history.list 404). messages.list with `q=after:<epoch> before:<epoch>` (one
  second of slack on each side: the bounds' inclusiveness is not documented; dates outside
  the range are dropped by `internalDate`), pages by `pageToken` (short pages and an answer
  without `messages` are normal), then messages.get for each id, `max_workers` in flight. A
  full read of the range also answers a Listing of it, so a message deleted while nobody was
  watching leaves the index. The mailbox's historyId is read (getProfile) before the listing
  and stored as the partition's cursor.
- incremental: a later run of an open day with a stored historyId. history.list from it:
  messagesAdded are fetched; messagesDeleted become Tombstones; a label change matters only
  when it moves a message into or out of SPAM/TRASH or the connection's label allow-list
  (into: a Tombstone; out of SPAM/TRASH or into an allowed label: fetched). A message
  deleted before it could be fetched is a Tombstone too. Changed messages of any day are
  written (a partition counts them on its nearest day).

Never indexed: SPAM, TRASH and drafts, and with `labels` set, messages carrying none of
them. One document per message, its quoted replies trimmed (quotes.py), grouped by
`thread_id` in metadata; partition time = `internalDate`. `access` is the mailbox owner, or
with `access: owner_and_internal` also the message's senders and recipients in the
connection's `internal_domains` (default: the owner's own domain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr
from typing import Literal

from pydantic import Field, field_validator

from sync_pipelines import clock
from sync_pipelines.documents import Document, Listing, Tombstone
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import MalformedResponseError
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.gmail.client import SOURCE, GmailClient, HistoryExpired
from sync_pipelines.sources.gmail.mime import MessageParser, Parsed
from sync_pipelines.sources.options import OptionsModel

HIDDEN = frozenset({"SPAM", "TRASH", "DRAFT"})
LISTING_REASON = "no longer listed by Gmail for its day (deleted, trashed or relabelled)"


class GmailOptions(OptionsModel):
    """A mailbox connection's options (auth.py documents `mailbox` and `token_uri`)."""

    labels: tuple[str, ...] = ()  # allow-list of label names (or ids); empty: every label
    access: Literal["owner", "owner_and_internal"] = "owner"
    internal_domains: tuple[str, ...] = ()
    attachment_max_bytes: int = Field(default=5_000_000, ge=0)
    mailbox: str | None = None  # the address a service account impersonates
    token_uri: str | None = None

    @field_validator("labels", "internal_domains", mode="before")
    @classmethod
    def _names(cls, value: object) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v.strip() for v in value
        ):
            raise ValueError("must be a list of names")
        return tuple(v.strip() for v in value)


@dataclass(kw_only=True)
class GmailSyncResult(SyncResult):
    messages_listed: int = 0
    messages_fetched: int = 0
    messages_skipped: int = 0  # spam, trash, drafts, outside the allow-list or the range
    history_records: int = 0
    history_expired: int = 0  # the stored historyId was gone: a full re-list instead
    attachments_extracted: int = 0
    attachments_listed: int = 0
    quotes_trimmed: int = 0


@dataclass
class _Change:
    added: bool = False
    deleted: bool = False
    relabelled: bool = False
    labels: list[str] | None = None  # the message's labels after the change, when given


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def resolve_labels(labels: list[dict], wanted: tuple[str, ...], label: str) -> dict[str, str]:
    """id -> name of every label; ValueError naming the allow-list's unknown labels."""
    names = {str(item.get("id")): str(item.get("name") or item.get("id")) for item in labels}
    by_name = {name.lower(): label_id for label_id, name in names.items()}
    unknown = [w for w in wanted if w not in names and w.lower() not in by_name]
    if unknown:
        raise ValueError(
            f"{label}: unknown labels {unknown} in the option 'labels'; the mailbox has "
            f"{sorted(names.values())}"
        )
    return names


class GmailSync:
    """One run's reader: one mailbox, into documents, tombstones and listings."""

    def __init__(self, client: GmailClient, options: GmailOptions, connection_id: str):
        self.client = client
        self.options = options
        self.connection_id = connection_id
        self.label_names: dict[str, str] = {}
        self.allowed: frozenset[str] = frozenset()
        self.owner = ""

    def doc_id(self, message_id: str) -> str:
        return Document.make_id(SOURCE, self.connection_id, message_id)

    def visible(self, labels: list[str] | set[str]) -> bool:
        found = set(labels)
        return not found & HIDDEN and (not self.allowed or bool(found & self.allowed))

    def prepare(self) -> str:
        """Owner, labels and the allow-list; answers the mailbox's current historyId."""
        profile = self.client.profile()
        self.owner = str(profile["emailAddress"]).lower()
        self.label_names = resolve_labels(
            self.client.labels(), self.options.labels, self.client.label
        )
        by_name = {n.lower(): i for i, n in self.label_names.items()}
        self.allowed = frozenset(
            w if w in self.label_names else by_name[w.lower()] for w in self.options.labels
        )
        return str(profile["historyId"])

    def run(
        self,
        window: SyncWindow,
        mark: float | None,
        cursor: str | None,
        now: float | None = None,
    ) -> GmailSyncResult:
        bounds = window.bounds(mark, now=now)
        history_id = self.prepare()
        result = GmailSyncResult(documents=[], high_water_mark=bounds.upper, mode=bounds.mode)
        if bounds.incremental and cursor:
            try:
                result.cursor = self._incremental(cursor, bounds.now, result)
                return result
            except HistoryExpired:
                # The historyId read above predates the listing: it is the next start.
                result.history_expired = 1
                result.documents, result.tombstones = [], []
        result.mode = "full"
        result.cursor = history_id
        if not bounds.empty:
            self._full(window.start_epoch, bounds.upper, result)
        return result

    # -- full --------------------------------------------------------------------------------

    def list_ids(self, start: float, end: float, page_size: int | None = None) -> set[str]:
        """Every message id dated in [start, end) (some just outside too), in the allow-list's
        labels when there is one; complete, or raising."""
        after, before = math.floor(start) - 1, math.ceil(end) + 1
        ids: set[str] = set()
        for label_id in sorted(self.allowed) or [None]:
            for item in self.client.message_ids(after, before, label_id, page_size):
                if not isinstance(item, dict) or not item.get("id"):
                    raise MalformedResponseError(
                        f"{self.client.label}: a listed message without id"
                    )
                ids.add(str(item["id"]))
        return ids

    def _full(self, start: float, end: float, result: GmailSyncResult) -> None:
        listed_at = clock.now_epoch()
        ids = self.list_ids(start, end)
        result.messages_listed = len(ids)
        gone: set[str] = set()
        for message_id, message in self.client.messages(sorted(ids)):
            if message is None:
                gone.add(message_id)
                continue
            result.messages_fetched += 1
            at = internal_date(message)
            if not (start <= at < end and self.visible(message.get("labelIds") or [])):
                result.messages_skipped += 1
                continue
            result.documents.append(self.document(message, result))
        listed = {self.doc_id(i) for i in ids - gone}
        result.listings.append(
            Listing(self.doc_id(""), start, end, frozenset(listed), listed_at, LISTING_REASON)
        )

    # -- incremental -------------------------------------------------------------------------

    def _incremental(self, cursor: str, now: float, result: GmailSyncResult) -> str:
        records, latest = self.client.history(cursor)
        result.history_records = len(records)
        changes = self.changes(records)
        to_fetch = []
        for message_id, change in changes.items():
            if change.deleted:
                result.tombstones.append(
                    Tombstone(self.doc_id(message_id), "deleted in Gmail", now)
                )
            elif change.labels is not None and not self.visible(change.labels):
                if change.relabelled:
                    result.tombstones.append(
                        Tombstone(self.doc_id(message_id), "moved out of the indexed labels", now)
                    )
                else:
                    result.messages_skipped += 1
            else:
                to_fetch.append(message_id)
        for message_id, message in self.client.messages(to_fetch):
            change = changes[message_id]
            if message is None or not self.visible(message.get("labelIds") or []):
                if message is None or change.relabelled:
                    result.tombstones.append(
                        Tombstone(
                            self.doc_id(message_id), "gone or moved out of the indexed labels", now
                        )
                    )
                result.messages_skipped += message is not None
                continue
            result.messages_fetched += 1
            result.documents.append(self.document(message, result))
        return latest

    def changes(self, records: list[dict]) -> dict[str, _Change]:
        """Per message, what the history records did to it (in order: the last labels win)."""
        relevant = HIDDEN | self.allowed
        changes: dict[str, _Change] = {}

        def entries(record: dict, kind: str):
            for entry in record.get(kind) or []:
                message = entry.get("message") if isinstance(entry, dict) else None
                if isinstance(message, dict) and message.get("id"):
                    yield entry, message, changes.setdefault(str(message["id"]), _Change())

        for record in records:
            for _, message, change in entries(record, "messagesAdded"):
                change.added = True
                change.labels = message.get("labelIds", change.labels)
            for kind in ("labelsAdded", "labelsRemoved"):
                for entry, message, change in entries(record, kind):
                    change.relabelled |= bool(set(entry.get("labelIds") or []) & relevant)
                    change.labels = message.get("labelIds", change.labels)
            for _, _, change in entries(record, "messagesDeleted"):
                change.deleted = True
        return {i: c for i, c in changes.items() if c.added or c.deleted or c.relabelled}

    # -- documents ---------------------------------------------------------------------------

    def document(self, message: dict, result: GmailSyncResult) -> Document:
        message_id = str(message["id"])
        parser = MessageParser(
            lambda attachment_id: self.client.attachment(message_id, attachment_id),
            self.options.attachment_max_bytes,
        )
        parsed = parser.parse(message.get("payload") or {})
        result.quotes_trimmed += parsed.trimmed
        for attachment in parsed.attachments:
            if attachment.text:
                result.attachments_extracted += 1
            else:
                result.attachments_listed += 1
        return message_document(self, message, parsed)


def internal_date(message: dict) -> float:
    try:
        return int(message["internalDate"]) / 1000
    except (KeyError, TypeError, ValueError):
        raise MalformedResponseError(
            f"gmail message {message.get('id')!r} has a malformed internalDate"
        ) from None


def _addresses(value: str) -> list[str]:
    return [address.lower() for _, address in getaddresses([value]) if "@" in address]


def message_document(sync: GmailSync, message: dict, parsed: Parsed) -> Document:
    headers = parsed.headers
    at = internal_date(message)
    subject = headers.get("subject", "").strip() or "(no subject)"
    name, sender = parseaddr(headers.get("from", ""))
    to, cc = _addresses(headers.get("to", "")), _addresses(headers.get("cc", ""))
    people = {sender.lower(), *to, *cc} - {""}
    access = {sync.owner}
    if sync.options.access == "owner_and_internal":
        domains = {d.lower().lstrip("@") for d in sync.options.internal_domains}
        domains = domains or {sync.owner.rpartition("@")[2]}
        access |= {p for p in people if p.rpartition("@")[2] in domains}
    lines = [f"Subject: {subject}", f"From: {headers.get('from', '')}"]
    lines += [f"To: {headers['to']}"] if headers.get("to") else []
    lines += [f"Cc: {headers['cc']}"] if headers.get("cc") else []
    lines += [f"Date: {headers.get('date') or _iso(at)}", "", parsed.text]
    for attachment in parsed.attachments:
        if attachment.text:
            lines += ["", f"Attachment {attachment.filename}:", attachment.text]
    listed = [a for a in parsed.attachments if not a.text]
    if listed:
        lines += ["", "Attachments: " + "; ".join(_described(a) for a in listed)]
    label_ids = sorted(str(label) for label in message.get("labelIds") or [])
    message_id, thread_id = str(message["id"]), str(message.get("threadId") or message["id"])
    return Document(
        doc_id=sync.doc_id(message_id),
        source=SOURCE,
        connection=sync.connection_id,
        title=subject,
        text="\n".join(lines).strip(),
        url=f"https://mail.google.com/mail/u/{sync.owner}/#all/{message_id}",
        author=name or sender,
        created_at=_iso(at),
        updated_at=_iso(at),
        timestamp_epoch=at,
        access=tuple(sorted(access)),
        metadata={
            "message_id": message_id,
            "thread_id": thread_id,
            "mailbox": sync.owner,
            "from": sender.lower(),
            "to": to,
            "cc": cc,
            "subject": subject,
            "label_ids": label_ids,
            "labels": [sync.label_names.get(i, i) for i in label_ids],
            "attachments": [a.filename for a in parsed.attachments],
            "rfc822_message_id": headers.get("message-id", ""),
            "in_reply_to": headers.get("in-reply-to", ""),
            "body_type": parsed.body_type,
            "quotes_trimmed": parsed.trimmed,
        },
    )


def _described(attachment) -> str:
    note = f", {attachment.note}" if attachment.note else ""
    return f"{attachment.filename} ({attachment.mime_type}, {attachment.size} bytes{note})"
