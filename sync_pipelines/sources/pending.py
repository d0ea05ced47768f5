"""Items a source listed but could not write yet (a transcript still processing), shared by
every source that has them (meeting transcripts still processing, for instance).

Why: such an item appears in the listing of its day once, possibly never again within the
lookback, so skipping it would lose it and writing it would index an empty shell. Instead each
run hands the connection's pending list to the sync, which fetches those items again by id;
the asset stores what is still pending in its materialization metadata, so a failed run leaves
the previous list in place. After `MAX_WAIT` (measured on `sync_pipelines.clock` from the
first time the item was seen) the source writes the item as it is, flagged, and stops waiting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import NamedTuple, TypeVar

MAX_WAIT_S = 7 * 86_400.0
T = TypeVar("T")


@dataclass(frozen=True)
class PendingItem:
    """One item to fetch again: `id` is the source's own (what its API is asked for by),
    `doc_id` the document it will become, `at` the time that places it in a partition day
    (a meeting's start), `first_seen` when a run first found it not ready."""

    id: str
    doc_id: str
    at: float
    first_seen: float


def to_json(items: Iterable[PendingItem]) -> list[dict]:
    return [asdict(item) for item in sorted(items, key=lambda i: (i.at, i.doc_id))]


def from_json(value: object) -> list[PendingItem]:
    """The list a materialization stored; a malformed one is an error, never an empty list
    (that would silently drop what it held)."""
    rows = json.loads(value) if isinstance(value, str) else value
    if not isinstance(rows, list):
        raise ValueError(  # noqa: TRY004 - one error kind for any malformed stored list
            f"stored pending list is not a list: {type(rows).__name__}"
        )
    try:
        return [
            PendingItem(str(r["id"]), str(r["doc_id"]), float(r["at"]), float(r["first_seen"]))
            for r in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"stored pending list has a malformed item: {exc}") from None


class PendingTracker:
    """One run's bookkeeping: the carried list in; what to wait for and what was given up out.

    A source calls `resolved` for every item it writes normally and `wait` for every item
    that is not ready; `wait` says False once the item has waited `MAX_WAIT_S`, and the source
    then writes it flagged. Carried items the listing did not show are `unseen`: fetch them by
    id, and call `vanished` for those the API no longer knows.
    """

    def __init__(self, carried: Iterable[PendingItem], now: float):
        self.now = now
        self.carried = {item.doc_id: item for item in carried}
        self._waiting: dict[str, PendingItem] = {}
        self._given_up: dict[str, PendingItem] = {}
        self._settled: set[str] = set()

    def resolved(self, doc_id: str) -> None:
        self._settled.add(doc_id)
        self._waiting.pop(doc_id, None)

    def vanished(self, item: PendingItem) -> None:
        self.resolved(item.doc_id)

    def wait(self, item_id: str, doc_id: str, at: float) -> bool:
        """Remember a not-ready item (keeping when it was first seen); False: stop waiting."""
        carried = self.carried.get(doc_id)
        item = PendingItem(item_id, doc_id, at, carried.first_seen if carried else self.now)
        self._settled.add(doc_id)
        if self.now - item.first_seen >= MAX_WAIT_S:
            self._waiting.pop(doc_id, None)
            self._given_up[doc_id] = item
            return False
        self._waiting[doc_id] = item
        return True

    def unseen(self) -> list[PendingItem]:
        """Carried items this run has not dealt with yet."""
        return [item for doc_id, item in self.carried.items() if doc_id not in self._settled]

    @property
    def waiting(self) -> list[PendingItem]:
        return list(self._waiting.values())

    @property
    def given_up(self) -> list[PendingItem]:
        return list(self._given_up.values())


class Refetched(NamedTuple):
    """What `refetch_unseen` did: items asked for again, and those the API no longer had."""

    fetched: int
    vanished: int


def refetch_unseen(
    tracker: PendingTracker,
    fetch: Callable[[PendingItem], T | None],
    take: Callable[[T], None],
) -> Refetched:
    """Fetch again, one by one, the carried items this run's listing did not show: `take` each
    the API still has (it writes or waits as for a listed one), mark the rest vanished.

    Why one by one, each taken before the next is fetched: a source whose `take` makes calls of
    its own (per-item content) keeps the order of its calls and stops at the first failure."""
    fetched = vanished = 0
    for item in tracker.unseen():
        fetched += 1
        found = fetch(item)
        if found is None:
            tracker.vanished(item)
            vanished += 1
        else:
            take(found)
    return Refetched(fetched, vanished)
