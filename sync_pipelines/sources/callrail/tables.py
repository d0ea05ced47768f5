"""CallRail's objects as warehouse tables, and the searchable text they give the index.

Tables: `calls` (with transcription, note, tags, lead status, customer name and phone,
duration, source: the extra fields are asked for with `fields=`), `form_submissions` and
`text_messages` (one row per conversation, its recent messages nested). Each is read by its
own time (a call's start, a form's submission, a conversation's last message): CallRail has no
updated-time filter, so a run whose window reaches the present re-reads the last
`lookback_hours` (default 24) as well, and notes, tags, lead statuses and transcriptions added
after a call land on the next hourly run; merging on the id keeps that idempotent.

Documents: a call with a transcription or a note (a call with neither has no text to search;
its row still loads), every form submission (its fields), every conversation (its messages).
A transcription not ready yet is simply null in CallRail's answer (the API marks nothing
"processing"), so no pending item is kept: the lookback re-reads the call once it is
transcribed (CallRail attaches it within about 20 minutes) and its document is rewritten.
Access: `all` by default, or the connection's `access` list (emails or groups) for every
document of the account. Deletions: CallRail's API shows none; calls and form submissions
the warehouse holds for a run's range that the run's complete read did not return are soft
deleted and their documents tombstoned (absence.py); the daily reconciliation also clears
the index (reconcile.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from sync_pipelines.documents import ACCESS_ALL, Document
from sync_pipelines.errors import MalformedResponseError
from sync_pipelines.sources.callrail import absence
from sync_pipelines.sources.callrail.client import (
    RETENTION_S,
    SOURCE,
    CallRailClient,
    Page,
    epoch_of,
)
from sync_pipelines.warehouse.crm import CrmOptions
from sync_pipelines.warehouse.tables import CrmRun, Table

OBJECTS = ("calls", "form_submissions", "text_messages")
Reader = Callable[[CallRailClient, float, float, int], Iterator[Page]]
TIME_FIELD = {"calls": "start_time", "form_submissions": "submitted_at",
              "text_messages": "last_message_at"}  # fmt: skip


class CallRailOptions(CrmOptions):
    """A CallRail connection's options (unknown ones are refused, errors name the option)."""

    account_id: str | None = Field(
        default=None, description="The account (ACC...); else the account_id credential."
    )
    objects: tuple[str, ...] = Field(default=OBJECTS, description="Which objects to load.")
    lookback_hours: float = Field(
        default=24.0, ge=0, le=24 * 31, description="Re-read window for late edits."
    )
    access: tuple[str, ...] = Field(
        default=(ACCESS_ALL,), min_length=1, description="Who may read the documents."
    )

    @field_validator("objects")
    @classmethod
    def _known(cls, objects: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(objects) - set(OBJECTS))
        if unknown or not objects:
            raise ValueError(f"must name some of {', '.join(OBJECTS)}; unknown: {unknown}")
        return objects


def options_of(run: CrmRun) -> CallRailOptions:
    return run.options if isinstance(run.options, CallRailOptions) else CallRailOptions()


def read_range(run: CrmRun) -> tuple[float, float]:
    """[lower, upper) of the records' own times this run reads: the window, widened back by
    the lookback when the window reaches the present, never past CallRail's retention."""
    lookback = options_of(run).lookback_hours * 3600
    lower = run.lower
    if run.upper > run.now - lookback:
        lower = min(lower, run.now - lookback)
    return max(lower, run.now - RETENTION_S), run.upper


def record_time(kind: str) -> Callable[[dict], float]:
    field = TIME_FIELD[kind]

    def at(record: dict) -> float:
        if not isinstance(record, dict) or record.get(field) in (None, ""):
            raise MalformedResponseError(f"{SOURCE}: a {kind} record without {field}")
        return epoch_of(record[field], f"{kind} {field}")

    return at


def _pages(kind: str, read: Reader, known: absence.Known | None = None):
    """A Table's `pages`: the API's pages, each kept to the records of [lower, upper) (the
    API's `end_date` is inclusive and dates may be coarser than the window), each record
    with its time as `at_epoch`; then, for `known` stored rows the read did not return,
    stubs that soft-delete them (absence.py)."""
    at = record_time(kind)

    def pages(run: CrmRun) -> Iterator[Page]:
        lower, upper = read_range(run)
        if upper <= lower:
            return
        seen: set[str] = set()
        for page in read(run.client, lower, upper, run.page_size):
            kept = [r for r in page if lower <= at(r) < upper]
            for record in kept:
                record[absence.AT] = at(record)
                seen.add(str(record["id"]))
            if kept:
                yield kept
        if known:
            yield from absence.stubs(known, seen, TIME_FIELD[kind], run.page_size)

    return pages


def _or_retracted(document: Callable[[dict, CrmRun], Document | None]):
    def documented(record: dict, run: CrmRun) -> Document | None:
        if absence.is_absent(record):
            return absence.retracted(record, run.connection_id)
        return document(record, run)

    return documented


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tags(record: dict) -> list[str]:
    names = []
    for tag in record.get("tags") or []:
        name = tag.get("name") if isinstance(tag, dict) else tag
        if isinstance(name, str) and name:
            names.append(name)
    return names


def _document(run: CrmRun, kind: str, record: dict, **fields: Any) -> Document:
    at = record_time(kind)(record)
    flat = {k: v for k, v in fields.pop("metadata").items() if v is not None}
    return Document(
        doc_id=Document.make_id(SOURCE, run.connection_id, f"{kind}/{record['id']}"),
        source=SOURCE,
        connection=run.connection_id,
        created_at=_utc(at),
        updated_at=_utc(at),
        timestamp_epoch=at,
        access=tuple(options_of(run).access),
        metadata={"object": kind, "callrail_id": str(record["id"]), **flat},
        **fields,
    )


def _who(record: dict) -> str:
    name, phone = record.get("customer_name"), record.get("customer_phone_number")
    return " ".join(str(p) for p in (name, f"({phone})" if phone and name else phone) if p)


def call_document(record: dict, run: CrmRun) -> Document | None:
    """A call's note and transcription, with who called, about what, and how it went."""
    note, transcription = record.get("note"), record.get("transcription")
    if not note and not transcription:
        return None
    tags = _tags(record)
    facts = [
        f"{(record.get('direction') or 'inbound').capitalize()} call with {_who(record)}",
        f"Duration: {record.get('duration')} s" if record.get("duration") is not None else "",
        f"Source: {record['source']}" if record.get("source") else "",
        f"Lead status: {record['lead_status']}" if record.get("lead_status") else "",
        f"Tags: {', '.join(tags)}" if tags else "",
        f"Note: {note}" if note else "",
        f"Transcription:\n{transcription}" if transcription else "",
    ]
    account = run.client.account if hasattr(run.client, "account") else ""
    return _document(
        run,
        "calls",
        record,
        title=f"Call with {record.get('customer_name') or record.get('customer_phone_number')}",
        text="\n".join(f for f in facts if f),
        url=record.get("timeline_url") or f"https://app.callrail.com/a/{account}/calls",
        author=record.get("agent_email") or "",
        metadata={
            "customer_name": record.get("customer_name"),
            "customer_phone_number": record.get("customer_phone_number"),
            "direction": record.get("direction"),
            "duration": record.get("duration"),
            "lead_status": record.get("lead_status"),
            "source_name": record.get("source"),
            "tags": tags,
            "answered": record.get("answered"),
            "has_transcription": bool(transcription),
        },
    )


def form_document(record: dict, run: CrmRun) -> Document:
    """A form submission's fields, as the customer filled them in."""
    data = record.get("form_data") if isinstance(record.get("form_data"), dict) else {}
    lines = [f"Form submission from {_who(record)}"]
    lines += [f"{k}: {v}" for k, v in data.items() if v not in (None, "")]
    return _document(
        run,
        "form_submissions",
        record,
        title=f"Form submission from {record.get('customer_name') or 'a visitor'}",
        text="\n".join(lines),
        url=record.get("form_url") or "",
        author=record.get("customer_email") or "",
        metadata={
            "customer_name": record.get("customer_name"),
            "customer_phone_number": record.get("customer_phone_number"),
            "form_url": record.get("form_url"),
            "source_name": record.get("source"),
            "lead_status": record.get("lead_status"),
        },
    )


def conversation_document(record: dict, run: CrmRun) -> Document:
    """A text conversation's messages, oldest first, each with who wrote it."""
    messages = [m for m in record.get("recent_messages") or [] if isinstance(m, dict)]
    messages.sort(key=lambda m: str(m.get("created_at") or ""))
    customer = record.get("customer_name") or record.get("customer_phone_number") or "Customer"
    lines = [
        f"{customer if m.get('direction') == 'inbound' else 'Agent'}: {m.get('content') or ''}"
        for m in messages
    ]
    return _document(
        run,
        "text_messages",
        record,
        title=f"Text messages with {customer}",
        text="\n".join([f"Text conversation with {_who(record)}", *lines]),
        url="https://app.callrail.com/lead-center",
        author="",
        metadata={
            "customer_name": record.get("customer_name"),
            "customer_phone_number": record.get("customer_phone_number"),
            "state": record.get("state"),
            "messages": len(messages),
        },
    )


READERS: dict[str, Reader] = {
    "calls": lambda c, lo, hi, n: c.calls(lo, hi, n),
    "form_submissions": lambda c, lo, hi, n: c.form_submissions(lo, hi, n),
    "text_messages": lambda c, lo, hi, n: c.conversations(lo, hi, n),
}
DOCUMENTS = {
    "calls": call_document,
    "form_submissions": form_document,
    "text_messages": conversation_document,
}


def table(kind: str, known: absence.Known | None = None) -> Table:
    return Table(
        name=kind,
        primary_key=("id",),
        pages=_pages(kind, READERS[kind], known),
        document=_or_retracted(DOCUMENTS[kind]),
        is_deleted=absence.is_absent,
        updated_at=record_time(kind),
    )


def tables(run: CrmRun) -> Sequence[Table]:
    """The tables a connection loads (option `objects`, default all three), with the rows
    the warehouse holds for the run's range of calls and form submissions (absence.py)."""
    lower, upper = read_range(run)
    chosen = []
    for kind in options_of(run).objects:
        known = absence.stored(run, kind, lower, upper) if kind in absence.KINDS else None
        chosen.append(table(kind, known))
    return chosen
