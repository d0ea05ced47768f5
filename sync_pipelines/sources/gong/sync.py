"""Which Gong calls one run reads, and what it answers: documents, pending calls, a listing.

Partition semantics: a partition day holds the calls whose start (`metaData.started`, sent with
the call's own UTC offset, e.g. 16:30-08:00) falls in that UTC day: a call at 16:30 -08:00
belongs to the next UTC day. A run lists its range with `/v2/calls/extensive` (fromDateTime
inclusive, toDateTime exclusive, on the start; parties and CRM context included) and fetches
the transcripts of the calls it listed with `/v2/calls/transcript`, in batches of call ids.
Gong has no updated-since filter and a call's start never changes, so the start is the
partition key; a renamed call is picked up when its day is re-run, with the same doc_id.
- full mode (no mark, or a finished day): every call in [window start, min(window end, now)).
- incremental mode (today with a mark): a call is listed once recorded and processed, still
  dated at its start, so the run re-reads from the mark minus `lookback_hours` (default 6).
The returned high-water mark is min(window end, now).

Not-ready transcripts (the pending rule, sources/pending.py): a listed call whose transcript is
absent or empty is not written but returned as pending; the next runs fetch it again by id
(extensive and transcript with callIds) and write it once transcribed, on the partition of the
run that writes it. After pending.MAX_WAIT_S (7 days) it is written as it is, flagged
`transcript_missing`. A pending call Gong no longer has is dropped (`calls_vanished`).

Deletions: Gong has no deletion feed. A run that read its listing to the end answers a Listing
of scope `gong:<connection>:` over [lower, upper): every call listed there (pending ones too),
as of when the run began; vector_index deletes what it holds there that is not listed. Any
failed or malformed page raises first, so a partial listing is never answered. The daily
reconciliation (reconcile.py) lists the last 30 days with `GET /v2/calls`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from sync_pipelines.documents import ACCESS_ALL, Document, Listing
from sync_pipelines.errors import MalformedResponseError
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.gong.client import SOURCE, GongClient, call_id, call_start
from sync_pipelines.sources.gong.document import call_document
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.pending import PendingItem, PendingTracker

SYNC_REASON = "no longer listed for its day by Gong"


class GongOptions(OptionsModel):
    """A connection's options: who may read its calls, the incremental re-read, and the
    workspace (unset: every workspace the key sees)."""

    access: Literal["participants", "all"] = "participants"
    lookback_hours: float = Field(default=6.0, ge=0)
    workspace_id: str | None = None


@dataclass(kw_only=True)
class GongSyncResult(SyncResult):
    calls_fetched: int = 0
    calls_shared: int = 0  # written with access "all"
    calls_private: int = 0  # written for their participants only
    calls_with_crm: int = 0
    transcripts_fetched: int = 0
    calls_refetched: int = 0  # pending calls fetched again by id
    calls_vanished: int = 0  # pending calls Gong no longer has


def start_of(call: dict) -> float:
    """The call's start in UTC epoch seconds (MalformedResponseError when unreadable)."""
    try:
        return call_start(call)
    except (KeyError, TypeError, ValueError):
        raise MalformedResponseError(
            f"gong call {call.get('metaData', {}).get('id')!r} has a malformed start"
        ) from None


class GongSync:
    """One run's reader: the calls of one Gong company, into documents."""

    def __init__(self, client: GongClient, options: GongOptions, connection_id: str):
        self.client = client
        self.options = options
        self.connection_id = connection_id

    def doc_id(self, native_id: str) -> str:
        return Document.make_id(SOURCE, self.connection_id, native_id)

    def run(
        self,
        window: SyncWindow,
        high_water_mark: float | None,
        now: float | None = None,
        pending: Sequence[PendingItem] = (),
    ) -> GongSyncResult:
        bounds = window.bounds(high_water_mark, self.options.lookback_hours * 3600, now)
        result = GongSyncResult(documents=[], high_water_mark=bounds.upper, mode=bounds.mode)
        tracker = PendingTracker(pending, bounds.now)
        workspace = self.options.workspace_id
        if not bounds.empty:
            listed: set[str] = set()
            batch: list[tuple[dict, float]] = []
            for call in self.client.calls(bounds.lower, bounds.upper, workspace):
                result.calls_fetched += 1
                started = start_of(call)
                if bounds.lower <= started < bounds.upper:  # the filter is whole seconds
                    listed.add(self.doc_id(call_id(call)))
                    batch.append((call, started))
                if len(batch) >= self.client.batch_size:
                    self._take(batch, tracker, result)
                    batch = []
            self._take(batch, tracker, result)
            listing = Listing.of_connection(
                SOURCE, self.connection_id, bounds.lower, bounds.upper, listed, bounds.now,
                SYNC_REASON,
            )  # fmt: skip
            result.listings.append(listing)
        unseen = {item.id: item for item in tracker.unseen()}
        if unseen:
            found = []
            for call in self.client.calls_by_id(list(unseen), workspace):
                if call_id(call) in unseen:
                    found.append((call, start_of(call)))
            result.calls_refetched += len(found)
            for item_id in set(unseen) - {call_id(c) for c, _ in found}:
                tracker.vanished(unseen[item_id])
                result.calls_vanished += 1
            self._take(found, tracker, result)
        result.pending, result.given_up = tracker.waiting, tracker.given_up
        result.documents.sort(key=lambda d: (d.timestamp_epoch, d.doc_id))
        return result

    def _take(
        self, batch: list[tuple[dict, float]], tracker: PendingTracker, result: GongSyncResult
    ) -> None:
        """Fetch a batch's transcripts; write the transcribed calls, remember the others
        (or write them flagged once they have waited long enough)."""
        if not batch:
            return
        transcripts = self.client.transcripts([call_id(call) for call, _ in batch])
        for call, started in batch:
            native_id = call_id(call)
            doc_id = self.doc_id(native_id)
            monologues = transcripts.get(native_id) or []
            missing = not monologues
            if missing and tracker.wait(native_id, doc_id, started):
                continue
            if not missing:
                tracker.resolved(doc_id)
                result.transcripts_fetched += 1
            doc = call_document(
                call, monologues, self.connection_id, started, self.options.access, missing
            )
            result.documents.append(doc)
            result.calls_with_crm += bool(
                doc.metadata["crm_accounts"] or doc.metadata["crm_opportunities"]
            )
            if doc.access == (ACCESS_ALL,):
                result.calls_shared += 1
            else:
                result.calls_private += 1
