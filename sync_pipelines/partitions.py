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


class PartitionKeyError(ValueError):
    """A run's partition keys are malformed or span several connections."""


def window_from_keys(keys: list[str]) -> SyncWindow:
    """Turn the run's multi-partition keys (one connection, one or more days) into a window."""
    if not keys:
        raise PartitionKeyError("this asset is partitioned by date × connection: pick a partition")
    connections, days = set(), set()
    for key in keys:
        dims = key.keys_by_dimension if isinstance(key, MultiPartitionKey) else _split(key)
        connections.add(dims[CONNECTION_DIM])
        days.add(dims[DATE_DIM])
    if len(connections) != 1:
        raise PartitionKeyError(
            f"one run syncs one connection, this run spans {sorted(connections)}"
        )
    parsed = sorted(_parse_day(d) for d in days)
    return SyncWindow(
        connection=connections.pop(),
        start=parsed[0],
        end=parsed[-1] + timedelta(days=1),
        days=tuple(d.strftime("%Y-%m-%d") for d in parsed),
    )


def _split(key: str) -> dict[str, str]:
    parts = key.split("|")
    if len(parts) != 2:
        raise PartitionKeyError(f"partition key {key!r} is not '<connection>|<YYYY-MM-DD>'")
    # MultiPartitionKey joins dimension keys in the sorted order of the dimension names.
    return {CONNECTION_DIM: parts[0], DATE_DIM: parts[1]}


def _parse_day(day: str) -> datetime:
    try:
        return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise PartitionKeyError(f"partition date {day!r} is not YYYY-MM-DD") from None
