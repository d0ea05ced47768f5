"""One Fathom meeting as one document: what a search hit and call_insights need to read.

The text starts with the meeting's title, date, recorder and invitees (external ones marked),
then Fathom's summary (markdown, as Fathom writes it), its action items with their assignees,
and the transcript as speaker turns, each with the timestamp (HH:MM:SS into the recording) of
its first sentence; consecutive sentences of one speaker are one turn.

Day: `created_at` (when Fathom saved the recording, after it ended) is the document's time, so
a meeting recorded across midnight UTC belongs to the day it was created, as Fathom's own
`created_after`/`created_before` filters place it.

Access: the calendar invitees' emails and the recorder's, lower-cased. Fathom's sharing
(team or link shares) is not in the API, so a meeting is readable by who was invited to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sync_pipelines.documents import Document
from sync_pipelines.sources.fathom.client import SOURCE, parse_time


def text_of(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _objects(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _time_or_none(value: object) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        return None


def is_processing(meeting: dict) -> bool:
    """Fathom has not finished the recording: its transcript or summary, asked for, is null
    (or absent)."""
    return meeting.get("transcript") is None or meeting.get("default_summary") is None


def person(name: str, email: str) -> str:
    return f"{name} <{email}>" if name and email else name or email


def turns(transcript: list[dict]) -> list[str]:
    """`[HH:MM:SS] Speaker: text` lines, consecutive items of one speaker joined."""
    merged: list[tuple[str, str, list[str]]] = []
    for item in transcript:
        words = text_of(item.get("text"))
        if not words:
            continue
        speaker = item.get("speaker") if isinstance(item.get("speaker"), dict) else {}
        name = text_of(speaker.get("display_name")) or "Unknown speaker"
        if merged and merged[-1][0] == name:
            merged[-1][2].append(words)
        else:
            merged.append((name, text_of(item.get("timestamp")), [words]))
    return [
        (f"[{stamp}] " if stamp else "") + f"{name}: {' '.join(texts)}"
        for name, stamp, texts in merged
    ]


def action_lines(items: list[dict]) -> tuple[list[str], list[str]]:
    """`- description (assignee) [timestamp]` lines and the assignees' emails."""
    lines, emails = [], []
    for item in items:
        what = text_of(item.get("description"))
        if not what:
            continue
        assignee = item.get("assignee") if isinstance(item.get("assignee"), dict) else {}
        email = text_of(assignee.get("email")).lower()
        who = person(text_of(assignee.get("name")), email)
        stamp = text_of(item.get("recording_timestamp"))
        done = " (done)" if item.get("completed") else ""
        lines.append(
            f"- {what}{done}" + (f" ({who})" if who else "") + (f" [{stamp}]" if stamp else "")
        )
        if email:
            emails.append(email)
    return lines, sorted(set(emails))


def document(meeting: dict, connection_id: str, created: float) -> Document:
    """The meeting's document (see the module docstring); `created` is its created_at."""
    recording_id = str(meeting["recording_id"])
    title = text_of(meeting.get("title")) or text_of(meeting.get("meeting_title"))
    title = title or "Untitled meeting"
    recorder = meeting.get("recorded_by") if isinstance(meeting.get("recorded_by"), dict) else {}
    recorder_email = text_of(recorder.get("email")).lower()
    recorder_name = text_of(recorder.get("name"))
    invitees = _objects(meeting.get("calendar_invitees"))
    emails = {text_of(i.get("email")).lower() for i in invitees} | {recorder_email}
    emails.discard("")
    external = sorted(
        {
            text_of(i.get("email")).lower()
            for i in invitees
            if i.get("is_external") and text_of(i.get("email"))
        }
    )
    start = _time_or_none(meeting.get("recording_start_time"))
    end = _time_or_none(meeting.get("recording_end_time"))
    minutes = (end - start) / 60 if start is not None and end is not None and end > start else 0
    summary = meeting.get("default_summary")
    summary = text_of(summary.get("markdown_formatted")) if isinstance(summary, dict) else ""
    actions, assignees = action_lines(_objects(meeting.get("action_items")))
    lines = turns(_objects(meeting.get("transcript")))
    missing = is_processing(meeting)

    def invitee(i: dict) -> str:
        mark = " (external)" if i.get("is_external") else ""
        return person(text_of(i.get("name")), text_of(i.get("email")).lower()) + mark

    when = datetime.fromtimestamp(created, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"Meeting: {title}",
        f"Date: {when} ({minutes:.0f} min)",
        f"Recorded by: {person(recorder_name, recorder_email)}" if recorder_email else "",
        "Invitees: " + ", ".join(invitee(i) for i in invitees) if invitees else "",
        f"\nSummary:\n{summary}" if summary else "",
        "\nAction items:\n" + "\n".join(actions) if actions else "",
    ]
    if lines:
        parts.append("\nTranscript:\n" + "\n".join(lines))
    elif missing:
        parts.append("\nTranscript: not available (Fathom was still processing it).")
    kind = text_of(meeting.get("calendar_invitees_domains_type"))
    access = tuple(sorted(emails))
    return Document(
        doc_id=Document.make_id(SOURCE, connection_id, recording_id),
        source=SOURCE,
        connection=connection_id,
        title=title,
        text="\n".join(p for p in parts if p),
        url=text_of(meeting.get("url")) or text_of(meeting.get("share_url")),
        author=recorder_name or recorder_email,
        created_at=_iso(created),
        updated_at=_iso(created),
        timestamp_epoch=created,
        access=access,
        metadata={
            "meeting_id": recording_id,
            "title": title,
            "meeting_title": text_of(meeting.get("meeting_title")),
            "recorded_by": recorder_email,
            "recorded_by_team": text_of(recorder.get("team")),
            "attendee_emails": sorted(emails),
            "external_emails": external,
            "external_domains": sorted({e.partition("@")[2] for e in external}),
            "meeting_type": kind or ("one_or_more_external" if external else "only_internal"),
            "recording_start": _iso(start) if start is not None else "",
            "duration": round(minutes, 2),
            "transcript_language": text_of(meeting.get("transcript_language")),
            "action_items": len(actions),
            "action_item_assignees": assignees,
            "share_url": text_of(meeting.get("share_url")),
            "timestamp_epoch": created,
            "access": list(access),
            "transcript_missing": missing,
        },
    )


def turn_count(meeting: dict[str, Any]) -> int:
    return len(_objects(meeting.get("transcript")))
