"""pending.refetch_unseen, the loop Fathom and Fireflies share: only carried items the listing
did not show are fetched, each taken before the next is fetched, and those the API no longer
has are dropped and counted."""

from __future__ import annotations

from sync_pipelines.sources.pending import PendingItem, PendingTracker, Refetched, refetch_unseen

NOW = 1_800_000_000.0


def item(n: int) -> PendingItem:
    return PendingItem(f"m{n}", f"doc{n}", NOW - 86_400 + n, NOW - 3600)


def test_unseen_items_are_fetched_one_by_one_and_the_vanished_dropped():
    tracker = PendingTracker([item(1), item(2), item(3), item(4)], NOW)
    tracker.resolved("doc1")  # the run's listing showed it: not fetched again
    calls = []
    answers = {"m2": {"id": "m2", "ready": True}, "m4": {"id": "m4", "ready": False}}

    def fetch(pending: PendingItem) -> dict | None:
        calls.append(("fetch", pending.id))
        return answers.get(pending.id)

    def take(meeting: dict) -> None:
        calls.append(("take", meeting["id"]))
        n = meeting["id"][1:]
        if meeting["ready"]:
            tracker.resolved(f"doc{n}")
        else:
            tracker.wait(meeting["id"], f"doc{n}", NOW)

    assert refetch_unseen(tracker, fetch, take) == Refetched(fetched=3, vanished=1)
    assert calls == [("fetch", "m2"), ("take", "m2"), ("fetch", "m3"), ("fetch", "m4"),
                     ("take", "m4")]  # fmt: skip
    assert tracker.unseen() == [] and [i.doc_id for i in tracker.waiting] == ["doc4"]
    assert tracker.waiting[0].first_seen == NOW - 3600  # still counted from the first sight


def test_nothing_carried_fetches_nothing():
    tracker = PendingTracker([], NOW)
    assert refetch_unseen(tracker, lambda i: 1 / 0, lambda m: 1 / 0) == Refetched(0, 0)
