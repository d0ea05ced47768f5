"""Daily × connection partitions shared by every source asset.

Daily, not 15-minute, partitions: Dagster's UI degrades past ~25-40k partitions of one asset
and daily × connections stays far below that for years. `end_offset=1` makes today's
partition exist, because the schedules re-materialize the open day.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from sync_pipelines import clock

DATE_DIM = "date"
CONNECTION_DIM = "connection"
START_DATE_ENV = "SYNC_START_DATE"
DEFAULT_START_DATE = "2025-01-01"


def connections_partitions_name(source: str) -> str:
    return f"{source}_connections"


def source_partitions(source: str) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {
            DATE_DIM: DailyPartitionsDefinition(
                start_date=os.environ.get(START_DATE_ENV, DEFAULT_START_DATE),
                end_offset=1,
                timezone="UTC",
            ),
            CONNECTION_DIM: DynamicPartitionsDefinition(name=connections_partitions_name(source)),
        }
    )


def partition_key(day: str, connection: str) -> MultiPartitionKey:
    return MultiPartitionKey({DATE_DIM: day, CONNECTION_DIM: connection})


@dataclass(frozen=True)
class SyncWindow:
    """What one run covers: one connection, a range of whole UTC days [start, end)."""

    connection: str
    start: datetime
    end: datetime
    days: tuple[str, ...]

    @property
    def start_epoch(self) -> float:
        return self.start.timestamp()

    @property
    def end_epoch(self) -> float:
        return self.end.timestamp()

    def bounds(
        self, mark: float | None, overlap_s: float = 0.0, now: float | None = None
    ) -> Bounds:
        """What a run reads: the window up to `now` (never the future), and, when an earlier
        run of this partition left a mark inside the window, only from the mark minus the
        source's overlap on (never before the window's start). The overlap covers what the
        vendor indexes late (search lag, transcripts processed after the meeting)."""
        now = clock.now_epoch() if now is None else now
        upper = min(self.end_epoch, now)
        incremental = mark is not None and mark < self.end_epoch
        lower = max(self.start_epoch, mark - overlap_s) if incremental else self.start_epoch
        return Bounds(lower=lower, upper=upper, mark=mark if incremental else None, now=now)


@dataclass(frozen=True)
class Bounds:
    """The time range one run reads, in epoch seconds: [lower, upper). `mark` is the
    previous run's high-water mark when the run is incremental, else None."""

    lower: float
    upper: float
    mark: float | None
    now: float

    @property
    def incremental(self) -> bool:
        return self.mark is not None

    @property
    def mode(self) -> str:
        """'incremental' or 'full', as every source reports it."""
        return "incremental" if self.incremental else "full"

    @property
    def empty(self) -> bool:
        return self.upper <= self.lower


class PartitionKeyError(ValueError):
    """A run's partition keys are malformed or span several connections."""


def windows_by_connection(keys: list) -> list[SyncWindow]:
    """One window per connection, in connection order: a backfill range may span several."""
    by_connection: dict[str, list] = {}
    for key in keys:
        by_connection.setdefault(dimensions(key)[CONNECTION_DIM], []).append(key)
    return [window_from_keys(group) for _, group in sorted(by_connection.items())]


def dimensions(key: MultiPartitionKey | str) -> dict[str, str]:
    """{connection, date} of a partition key: the one place a key is taken apart."""
    if isinstance(key, MultiPartitionKey):
        return dict(key.keys_by_dimension)
    parts = str(key).split("|")
    if len(parts) != 2:
        raise PartitionKeyError(f"partition key {key!r} is not '<connection>|<YYYY-MM-DD>'")
    # MultiPartitionKey joins dimension keys in the sorted order of the dimension names.
    return {CONNECTION_DIM: parts[0], DATE_DIM: parts[1]}


def parse_day(day: str) -> datetime:
    """Midnight UTC of a partition date; PartitionKeyError naming it if it is not one."""
    try:
        return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise PartitionKeyError(f"partition date {day!r} is not YYYY-MM-DD") from None


def day_end_epoch(day: str) -> float:
    return (parse_day(day) + timedelta(days=1)).timestamp()


def window_from_keys(keys: list[str]) -> SyncWindow:
    """Turn the run's multi-partition keys (one connection, one or more days) into a window."""
    if not keys:
        raise PartitionKeyError("this asset is partitioned by date × connection: pick a partition")
    connections, days = set(), set()
    for key in keys:
        dims = dimensions(key)
        connections.add(dims[CONNECTION_DIM])
        days.add(dims[DATE_DIM])
    if len(connections) != 1:
        raise PartitionKeyError(
            f"one run syncs one connection, this run spans {sorted(connections)}"
        )
    parsed = sorted(parse_day(d) for d in days)
    return SyncWindow(
        connection=connections.pop(),
        start=parsed[0],
        end=parsed[-1] + timedelta(days=1),
        days=tuple(d.strftime("%Y-%m-%d") for d in parsed),
    )
