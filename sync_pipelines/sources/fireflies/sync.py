"""Which Fireflies meetings one run reads, and how each becomes a searchable document.

Partition semantics: a partition day holds the meetings whose `date` (the meeting's start, epoch
ms) falls in that UTC day, fetched with `transcripts(fromDate, toDate)` and paged by `skip`.
Fireflies has no updated-since filter and meetings are not edited once transcribed, so the
meeting date is the partition key. What can still change (a renamed title, a new privacy
setting) is picked up when that day is re-run; a re-run keeps every doc_id.
- full mode (no mark, or a finished day): every meeting in [window start, min(window end, now)).
- incremental mode (today with a mark): a transcript appears only after its meeting ended and
  was processed, still dated at its start, so the run re-reads from the mark minus
  `lookback_hours` (default 6) to the present. Re-read meetings keep their doc_ids.
The returned high-water mark is min(window end, now).

Not-ready meetings (the pending rule, sources/pending.py): the listing also holds meetings
whose transcript is still processing (`meeting_info.summary_status` "processing", no
sentences yet). Such a meeting is not written but returned as pending; the asset stores the
connection's pending list and hands it to the next run, which fetches each one again by id
(`transcript(id:)`), whatever day that run covers, and writes it once it is ready (on the
partition of the run that writes it). After pending.MAX_WAIT_S (7 days) it is written as it is,
with `transcript_missing: true`, and counted. A pending meeting deleted meanwhile is dropped
and counted (`meetings_vanished`). Only "processing" waits: "failed" or "skipped" summaries
will not come, so those meetings are written with what they have.

Deletions: Fireflies gives no deletion signal; a deleted meeting is simply no longer listed
for its day. So a run that read its listing to the end also answers a Listing
(documents.Listing) of scope `fireflies:<connection>:` over [lower, upper): every meeting
listed there, those still processing included (they exist), as of the moment the listing
began; vector_index deletes what it holds in that range that is not listed. The query's
fromDate/toDate reach one millisecond beyond [lower, upper) (client.date_bounds), so the
range holds whether Fireflies treats them as inclusive or not. A re-run of a day removes the
meetings deleted from it; today's hourly run covers its lookback; the daily reconciliation
(reconcile.py) the last 30 days.

Limitations: a meeting that is not listed at all until processed more than `lookback_hours`
after its start (or after its day was last re-run) is seen only by re-running that day; a
meeting deleted while the listing is paged can shift a later meeting out of view for that run
(the next run sees it): the pages tell (client.TranscriptPages), and such a run writes its
documents but no listing.

Sharing (`access`): Fireflies' `privacy` decides who may read a meeting. `teammates` and
`teammates_and_participants` are shared company-wide -> ("all",); `owner` -> the organizer;
anything else (`participants`, `participating_teammates`, `link`, missing or unknown values)
-> the attendees' and organizer's emails, lower-cased. `link` is treated as private because a
link share is not a company share. The privacy values come from Fireflies' documented
meeting privacy settings; that Transcript.privacy uses the same values is UNCONFIRMED.

Project tags: the connection option `project_keywords` maps project keys to keywords
(`{SUBS: [subscription, billing]}`); a meeting is tagged with every project whose keywords
(whole words, case-insensitive, plural -s/-es allowed) occur in its title, summary or
transcript, and with the project of every issue key mentioned (`[A-Z][A-Z0-9]+-\\d+`). With a
map configured, only issue keys of its projects count (so "UTF-8" tags nothing); without one,
every issue-key-shaped word counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import Field, field_validator

from sync_pipelines.documents import ACCESS_ALL, Document, Listing
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import MalformedResponseError
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.fireflies.client import SOURCE, FirefliesClient
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.pending import PendingItem, PendingTracker, refetch_unseen

COMPANY_WIDE = frozenset({"teammates", "teammates_and_participants"})
OWNER_ONLY = frozenset({"owner"})
ISSUE_KEY = re.compile(r"\b([A-Z][A-Z0-9]+)-\d+\b")
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]+$")  # as the issue keys it tags by
SYNC_REASON = "no longer listed for its day by Fireflies"


class FirefliesOptions(OptionsModel):
    """A connection's options: the project keyword map and the incremental re-read."""

    project_keywords: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    lookback_hours: float = Field(default=6.0, ge=0)

    @field_validator("project_keywords", mode="before")
    @classmethod
    def _keyword_map(cls, raw: object) -> dict[str, tuple[str, ...]]:
        """{SUBS: [subscription, billing]}: project keys to non-empty keywords (null: none)."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ValueError("must map project keys to keyword lists")  # noqa: TRY004 - pydantic
        keywords: dict[str, tuple[str, ...]] = {}
        for key, words in raw.items():
            if not isinstance(key, str) or not _PROJECT_KEY.match(key):
                raise ValueError(f"{key!r} is not a project key (e.g. SUBS)")
            if (
                isinstance(words, str)
                or not isinstance(words, (list, tuple))
                or not all(isinstance(w, str) and w.strip() for w in words)
            ):
                raise ValueError(f"{key} needs a list of keywords")
            keywords[key] = tuple(w.strip() for w in words)
        return keywords


class ProjectTagger:
    """Project keys a meeting is about: keyword matches plus the projects of issue keys."""

    def __init__(self, project_keywords: dict[str, tuple[str, ...]]):
        self.known = frozenset(project_keywords)
        self.patterns = {
            key: re.compile(
                r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?:e?s)?(?!\w)",
                re.IGNORECASE,
            )
            for key, words in project_keywords.items()
            if words
        }

    def issue_keys(self, text: str) -> list[str]:
        keys = {m.group(0) for m in ISSUE_KEY.finditer(text)}
        if self.known:
            keys = {k for k in keys if k.split("-")[0] in self.known}
        return sorted(keys)

    def tags(self, text: str, issue_keys: list[str]) -> list[str]:
        tags = {key.split("-")[0] for key in issue_keys}
        tags.update(key for key, pattern in self.patterns.items() if pattern.search(text))
        return sorted(tags)


@dataclass(kw_only=True)
class FirefliesSyncResult(SyncResult):
    meetings_fetched: int = 0
    meetings_shared: int = 0
    meetings_private: int = 0
    sentences: int = 0
    meetings_tagged: int = 0
    meetings_refetched: int = 0  # pending meetings fetched again by id
    meetings_vanished: int = 0  # pending meetings Fireflies no longer has


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def access_of(transcript: dict, attendee_emails: list[str], organizer: str) -> tuple[str, ...]:
    """Who may read the meeting, from its privacy setting (see the module docstring)."""
    privacy = _text(transcript.get("privacy")).lower()
    if privacy in COMPANY_WIDE:
        return (ACCESS_ALL,)
    if privacy in OWNER_ONLY and organizer:
        return (organizer,)
    return tuple(sorted(set(attendee_emails) | ({organizer} if organizer else set())))


def transcript_lines(sentences: list[dict]) -> list[str]:
    """ "Speaker: text" lines, consecutive sentences of one speaker joined."""
    lines: list[tuple[str, list[str]]] = []
    for sentence in sorted(sentences, key=lambda s: _number(s.get("index"))):
        text = _text(sentence.get("text"))
        if not text:
            continue
        speaker = _text(sentence.get("speaker_name")) or "Unknown speaker"
        if lines and lines[-1][0] == speaker:
            lines[-1][1].append(text)
        else:
            lines.append((speaker, [text]))
    return [f"{speaker}: {' '.join(texts)}" for speaker, texts in lines]


class FirefliesSync:
    """One run's reader: the meetings of one Fireflies account, into documents."""

    def __init__(self, client: FirefliesClient, options: FirefliesOptions, connection_id: str):
        self.client = client
        self.options = options
        self.connection_id = connection_id
        self.tagger = ProjectTagger(options.project_keywords)

    def run(
        self,
        window: SyncWindow,
        high_water_mark: float | None,
        now: float | None = None,
        pending: Sequence[PendingItem] = (),
    ) -> FirefliesSyncResult:
        bounds = window.bounds(high_water_mark, self.options.lookback_hours * 3600, now)
        result = FirefliesSyncResult(documents=[], high_water_mark=bounds.upper, mode=bounds.mode)
        tracker = PendingTracker(pending, bounds.now)
        if not bounds.empty:
            listed: set[str] = set()
            pages = self.client.transcripts(bounds.lower, bounds.upper)
            for transcript in pages:
                result.meetings_fetched += 1
                date = meeting_date(transcript)
                if bounds.lower <= date < bounds.upper:  # the query's bounds reach 1 ms beyond
                    listed.add(self.doc_id(str(transcript["id"])))
                    self._take(transcript, date, tracker, result)
            if pages.complete:
                result.listings.append(self.listing(bounds.lower, bounds.upper, listed, bounds.now))
        result.meetings_refetched, result.meetings_vanished = refetch_unseen(
            tracker,
            lambda item: self.client.transcript(item.id),
            lambda transcript: self._take(transcript, meeting_date(transcript), tracker, result),
        )
        result.pending, result.given_up = tracker.waiting, tracker.given_up
        result.documents.sort(key=lambda d: (d.timestamp_epoch, d.doc_id))
        return result

    def _take(
        self, transcript: dict, date: float, tracker: PendingTracker, result: FirefliesSyncResult
    ) -> None:
        """Write a finished meeting; remember one still processing, or write it flagged once
        it has waited long enough."""
        meeting_id = str(transcript["id"])
        processing = is_processing(transcript)
        if processing and tracker.wait(meeting_id, self.doc_id(meeting_id), date):
            return
        if not processing:
            tracker.resolved(self.doc_id(meeting_id))
        doc = self.document(transcript, date)
        result.documents.append(doc)
        result.sentences += len(transcript.get("sentences") or [])
        result.meetings_tagged += bool(doc.metadata["project_tags"])
        if doc.access == (ACCESS_ALL,):
            result.meetings_shared += 1
        else:
            result.meetings_private += 1

    def doc_id(self, meeting_id: str) -> str:
        return Document.make_id(SOURCE, self.connection_id, meeting_id)

    def listing(self, start: float, end: float, doc_ids: set[str], listed_at: float) -> Listing:
        """What the run's listing proves: the meetings dated in [start, end) are these."""
        return Listing.of_connection(
            SOURCE, self.connection_id, start, end, doc_ids, listed_at, SYNC_REASON
        )

    def document(self, transcript: dict, date: float) -> Document:
        meeting_id = str(transcript["id"])
        title = _text(transcript.get("title")) or "Untitled meeting"
        attendees = [a for a in transcript.get("meeting_attendees") or [] if isinstance(a, dict)]
        names = {_text(a.get("email")).lower(): _text(a.get("displayName")) for a in attendees}
        emails = sorted(
            {e for e in names if e}
            | {_text(p).lower() for p in transcript.get("participants") or [] if _text(p)}
        )
        organizer = (
            _text(transcript.get("organizer_email")) or _text(transcript.get("host_email"))
        ).lower()
        summary = transcript.get("summary")
        summary = summary if isinstance(summary, dict) else {}
        sentences = [s for s in transcript.get("sentences") or [] if isinstance(s, dict)]
        lines = transcript_lines(sentences)
        duration = _number(transcript.get("duration"))
        text = self._header(title, date, duration, organizer, names, emails, summary)
        missing = is_processing(transcript)
        if lines:
            text += "\n\nTranscript:\n" + "\n".join(lines)
        elif missing:
            text += "\n\nTranscript: not available (Fireflies was still processing it)."
        # What was said and written, without people's names (a surname is not a keyword).
        content = "\n".join(
            [title, _text(summary.get("overview")), _text(summary.get("action_items"))]
            + [_text(k) for k in summary.get("keywords") or []]
            + [_text(s.get("text")) for s in sentences]
        )
        issue_keys = self.tagger.issue_keys(content)
        access = access_of(transcript, emails, organizer)
        return Document(
            doc_id=self.doc_id(meeting_id),
            source=SOURCE,
            connection=self.connection_id,
            title=title,
            text=text,
            url=_text(transcript.get("transcript_url")),
            author=names.get(organizer) or organizer,
            created_at=_iso(date),
            updated_at=_iso(date),
            timestamp_epoch=date,
            access=access,
            metadata={
                "meeting_id": meeting_id,
                "title": title,
                "attendee_emails": emails,
                "organizer": organizer,
                "duration": round(duration, 2),
                "project_tags": self.tagger.tags(content, issue_keys),
                "issue_keys": issue_keys,
                "timestamp_epoch": date,
                "access": list(access),
                "privacy": _text(transcript.get("privacy")),
                "transcript_missing": missing,
            },
        )

    @staticmethod
    def _header(title, date, duration, organizer, names, emails, summary) -> str:
        """Title, date, people and Fireflies' summary: what a search hit should show first."""

        def person(email: str) -> str:
            return f"{names[email]} <{email}>" if names.get(email) else email

        when = datetime.fromtimestamp(date, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts = [
            f"Meeting: {title}",
            f"Date: {when} ({duration:.0f} min)",
            f"Organizer: {person(organizer)}" if organizer else "",
            "Attendees: " + ", ".join(person(e) for e in emails) if emails else "",
            f"Summary: {_text(summary.get('overview'))}" if _text(summary.get("overview")) else "",
            "Action items:\n" + _text(summary.get("action_items"))
            if _text(summary.get("action_items"))
            else "",
            "Keywords: " + ", ".join(_text(k) for k in summary.get("keywords") or [] if _text(k))
            if summary.get("keywords")
            else "",
        ]
        return "\n".join(p for p in parts if p)


def is_processing(transcript: dict) -> bool:
    """Fireflies has not finished the meeting: no sentences or summary yet."""
    info = transcript.get("meeting_info")
    return isinstance(info, dict) and info.get("summary_status") == "processing"


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def meeting_date(transcript: dict) -> float:
    """The meeting's start in epoch seconds (Fireflies sends epoch milliseconds)."""
    try:
        return float(transcript["date"]) / 1000
    except (KeyError, TypeError, ValueError):
        raise MalformedResponseError(
            f"fireflies transcript {transcript.get('id')!r} has a malformed date "
            f"{transcript.get('date')!r}"
        ) from None
