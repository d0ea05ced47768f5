"""A Fathom connection's sync: the meetings created in the run's window, one document each.

Window: by `created_at`, with Fathom's own `created_after`/`created_before` filters (so a
meeting recorded across midnight UTC belongs to the day it was saved). Within an open day a
run reads from the partition's mark minus `lookback_hours` (default 3), which covers a meeting
Fathom lists a little after its `created_at`.

Content: transcript, summary and action items come inline with the listing (one call per page
of 10 meetings); with `inline_content: false` (an OAuth connection, which Fathom does not give
the inline transcript and summary) each meeting's transcript and summary are fetched from
`/recordings/{id}/transcript` and `/summary` (two calls more per meeting).

Not ready: a meeting Fathom is still processing (its transcript or summary null) is never
written empty: it goes to the connection's pending list (sources/pending.py) and later runs
fetch it again, by listing the second of its `created_at` (Fathom has no meeting-by-id route),
until it is ready; after 7 days it is written as it is, flagged `transcript_missing`. One that
is no longer listed then was deleted meanwhile and is dropped.

Deletions: Fathom keeps no trace of a deleted meeting, so each run's listing is a Listing of
its [lower, upper) range (the meetings still processing included: they exist), and the daily
reconciliation (reconcile.py) lists the last 30 days. Only a listing whose every page was read
is returned; a failed or malformed page raises. UNCONFIRMED: whether Fathom's cursor is a
position; if it is, a meeting deleted while a listing is paged could hide a later one from that
one listing (it is then removed and written again by the next run that lists it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import Field, field_validator

from sync_pipelines.documents import Document, Listing
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.fathom.client import INCLUDE_ALL, SOURCE, FathomClient, created_at
from sync_pipelines.sources.fathom.document import document, is_processing, turn_count
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.pending import PendingItem, PendingTracker, refetch_unseen

SYNC_REASON = "no longer listed for its day by Fathom"


class FathomOptions(OptionsModel):
    """A connection's options: the re-read, how content is fetched, and Fathom's filters."""

    lookback_hours: float = Field(default=3.0, ge=0)
    inline_content: bool = True
    recorded_by: tuple[str, ...] = ()  # Fathom's recorded_by[]: only these recorders' meetings
    teams: tuple[str, ...] = ()  # Fathom's teams[]: only meetings of these teams

    @field_validator("recorded_by", "teams", mode="before")
    @classmethod
    def _names(cls, raw: object) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
            raise ValueError("must be a list")  # noqa: TRY004 - pydantic reports ValueErrors
        if not all(isinstance(v, str) and v.strip() for v in raw):
            raise ValueError("must be a list of non-empty names")
        return tuple(v.strip() for v in raw)

    def filters(self) -> dict[str, list[str] | None]:
        return {
            "recorded_by[]": list(self.recorded_by) or None,
            "teams[]": list(self.teams) or None,
        }


@dataclass(kw_only=True)
class FathomSyncResult(SyncResult):
    meetings_fetched: int = 0
    meetings_external: int = 0
    transcript_turns: int = 0
    action_items: int = 0
    content_calls: int = 0  # per-recording transcript/summary calls (inline_content: false)
    meetings_refetched: int = 0  # pending meetings fetched again
    meetings_vanished: int = 0  # pending meetings Fathom no longer lists


class FathomSync:
    """One run's reader: the meetings of one Fathom account, into documents."""

    def __init__(self, client: FathomClient, options: FathomOptions, connection_id: str):
        self.client = client
        self.options = options
        self.connection_id = connection_id
        self.include = INCLUDE_ALL if options.inline_content else ("include_action_items",)

    def doc_id(self, recording_id: object) -> str:
        return Document.make_id(SOURCE, self.connection_id, str(recording_id))

    def listing(self, since: float, until: float, include: tuple[str, ...]) -> Iterator[dict]:
        return self.client.meetings(since, until, include, **self.options.filters())

    def run(
        self,
        window: SyncWindow,
        high_water_mark: float | None,
        now: float | None = None,
        pending: Sequence[PendingItem] = (),
    ) -> FathomSyncResult:
        bounds = window.bounds(high_water_mark, self.options.lookback_hours * 3600, now)
        tracker = PendingTracker(pending, bounds.now)
        result = FathomSyncResult(documents=[], high_water_mark=bounds.upper, mode=bounds.mode)
        if not bounds.empty:
            listed: set[str] = set()
            for meeting in self.listing(bounds.lower, bounds.upper, self.include):
                result.meetings_fetched += 1
                created = created_at(meeting)
                if bounds.lower <= created < bounds.upper:  # the filters reach 1 s beyond
                    listed.add(self.doc_id(meeting["recording_id"]))
                    self._take(meeting, created, tracker, result)
            result.listings.append(
                Listing.of_connection(
                    SOURCE,
                    self.connection_id,
                    bounds.lower,
                    bounds.upper,
                    listed,
                    bounds.now,
                    SYNC_REASON,
                )
            )
        result.meetings_refetched, result.meetings_vanished = refetch_unseen(
            tracker,
            lambda item: self.client.meeting(item.id, item.at, self.include),
            lambda meeting: self._take(meeting, created_at(meeting), tracker, result),
        )
        result.pending, result.given_up = tracker.waiting, tracker.given_up
        result.documents.sort(key=lambda d: (d.timestamp_epoch, d.doc_id))
        return result

    def _take(
        self, meeting: dict, created: float, tracker: PendingTracker, result: FathomSyncResult
    ) -> None:
        """Write a finished meeting; remember one still processing, or write it flagged once
        it has waited long enough."""
        if not self.options.inline_content:
            meeting = self._with_content(meeting, result)
        recording_id = str(meeting["recording_id"])
        doc_id = self.doc_id(recording_id)
        if is_processing(meeting):
            if tracker.wait(recording_id, doc_id, created):
                return
        else:
            tracker.resolved(doc_id)
        doc = document(meeting, self.connection_id, created)
        result.documents.append(doc)
        result.meetings_external += bool(doc.metadata["external_emails"])
        result.transcript_turns += turn_count(meeting)
        result.action_items += doc.metadata["action_items"]

    def _with_content(self, meeting: dict, result: FathomSyncResult) -> dict:
        """The meeting with its transcript and summary from the per-recording routes."""
        recording_id = meeting["recording_id"]
        transcript = self.client.transcript(recording_id)
        summary = self.client.summary(recording_id) if transcript is not None else None
        result.content_calls += 1 + (transcript is not None)
        return {**meeting, "transcript": transcript, "default_summary": summary}
