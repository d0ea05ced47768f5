"""Which figures a source run records on each partition, and which are the run's own.

Why: a run may materialize many partitions (a backfill of 11 days), and Dagster copies one
MaterializeResult's metadata onto every one of them, so run totals would repeat on each day
and a sum over partitions would be false. Per-day figures (documents written, the day's
high-water mark, pending items, tombstones) are therefore attributed to days here and added per
partition; every other figure is the run's and carries the `run_` prefix.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from sync_pipelines.documents import Document, Tombstone
from sync_pipelines.metrics import RUN_PREFIX
from sync_pipelines.partitions import SyncWindow, day_end_epoch
from sync_pipelines.sources.pending import PendingItem

# Per-partition figures: their sum over a run's partitions is the run's figure.
DOCUMENTS_KEY = "documents_written"
TOMBSTONES_KEY = "tombstones_written"
ROW_COUNT_KEY = "dagster/row_count"
PENDING_COUNT_KEY = "pending_items"
GIVEN_UP_KEY = "pending_given_up"
HWM_KEY = "high_water_mark"
CURSOR_KEY = "source_cursor"  # a source's own resume position (SyncOutcome.cursor)


def document_time(doc: Document) -> float:
    """The default partition time of a document: its timestamp (last update, last edit,
    meeting start: whatever the source's document says)."""
    return doc.timestamp_epoch


def partition_day(window: SyncWindow, epoch: float) -> str:
    """The run's day an item counts on: its own day, or the nearest day of the run when it
    lies outside (an edit re-read by a lookback, a pending meeting fetched days later
    counts on the partition whose run wrote it)."""
    day = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d")
    if day in window.days:
        return day
    return window.days[0] if epoch < window.start_epoch else window.days[-1]




def day_figures(
    window: SyncWindow,
    documents: Sequence[Document],
    high_water_mark: float,
    pending: Iterable[PendingItem],
    given_up: Iterable[PendingItem],
    partition_time: Callable[[Document], float] = document_time,
    tombstones: Iterable[Tombstone] = (),
) -> dict[str, dict[str, float | int | str]]:
    """Each day of the window -> its figures. A day's mark is the lower of its end and the
    run's mark, so a single-day run keeps the run's mark exactly. A tombstone counts on the
    day it was observed (the run's last day when observed now)."""
    written = Counter(partition_day(window, partition_time(d)) for d in documents)
    deleted = Counter(partition_day(window, t.observed_at) for t in tombstones)
    waiting = Counter(partition_day(window, item.at) for item in pending)
    dropped = Counter(partition_day(window, item.at) for item in given_up)
    figures = {}
    for day in window.days:
        mark = min(day_end_epoch(day), high_water_mark)
        figures[day] = {
            DOCUMENTS_KEY: written[day],
            ROW_COUNT_KEY: written[day],
            TOMBSTONES_KEY: deleted[day],
            HWM_KEY: mark,
            "high_water_mark_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mark)),
            PENDING_COUNT_KEY: waiting[day],
            GIVEN_UP_KEY: dropped[day],
        }
    return figures


def run_figures(numbers: dict[str, float]) -> dict[str, float]:
    """The run's own figures, named as such (`api_calls` -> `run_api_calls`)."""
    return {
        RUN_PREFIX + name: round(value, 3) if isinstance(value, float) else value
        for name, value in numbers.items()
    }
