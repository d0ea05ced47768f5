"""What happened, read back from Dagster's own storage and turned into `Signal`s.

A finished run becomes one signal per watched (asset, connection) it planned: ok when the run
succeeded or materialized every planned partition of that subject, not ok otherwise. A source's
freshness state, as Dagster's freshness evaluation last recorded it, becomes one signal per
asset (the policy is per asset, not per connection). Partition keys of the sources are
"<connection>|<YYYY-MM-DD>" (multi-partition keys join dimensions in name order).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    RunStatusChangeRecordsFilter,
)

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

# Freshness states (dagster FreshnessState values, not exported) that open / close an alert.
# WARN, UNKNOWN (never materialized) and NOT_APPLICABLE neither open nor close one.
STALE = "FAIL"
FRESH = "PASS"
# Run-retry tags Dagster sets: on the failed run, and on the retry run.
WILL_RETRY_TAG = "dagster/will_retry"
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
RETRY_NUMBER_TAG = "dagster/retry_number"
# A failed run without a will_retry tag on an instance with run retries: Dagster adds the tag
# right after the failure event, so wait this long before calling the failure final.
UNTAGGED_GRACE_S = 60.0
# A run marked will_retry whose retry never launched (daemon down?) is final after this.
RETRY_WAIT_LIMIT_S = 30 * 60.0

_RUN_EVENTS = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)
_WRAPPER_ERRORS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}
_MODULE_PATH = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=\w+:)")


@dataclass(frozen=True)
class Signal:
    """One observed outcome. `key` is what alerts dedupe on; the rest is for the message."""

    key: str
    ok: bool
    asset: str
    run_id: str
    at: float
    connection: str | None = None
    partition: str | None = None
    detail: str = ""  # not ok: first error line, or how stale
    freshness: bool = False  # from the asset's freshness state, not from a run
    retries: int = 0


@dataclass(frozen=True)
class FinishedRun:
    storage_id: int
    run_id: str
    ok: bool
    at: float


class RetryFate(Enum):
    FINAL = "final"  # alert on it
    WAIT = "wait"  # a retry may come: decide on a later tick
    RETRIED = "retried"  # the retry run reports its own outcome


def latest_storage_id(instance: DagsterInstance) -> int:
    """Storage id of the newest run success/failure event (0 on a fresh instance)."""
    ids = [0]
    for event_type in _RUN_EVENTS:
        result = instance.fetch_run_status_changes(event_type, limit=1, ascending=False)
        ids += [r.storage_id for r in result.records]
    return max(ids)


def finished_runs(instance: DagsterInstance, after: int, limit: int) -> list[FinishedRun]:
    """Runs that succeeded or failed after event `after`, in the order they finished."""
    found, caps = [], []
    for event_type in _RUN_EVENTS:
        result = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after),
            limit=limit,
            ascending=True,
        )
        ok = event_type == DagsterEventType.RUN_SUCCESS
        found += [FinishedRun(r.storage_id, r.run_id, ok, r.timestamp) for r in result.records]
        if result.has_more:  # only merge up to where both lists are complete
            caps.append(result.records[-1].storage_id)
    cap = min(caps, default=None)
    kept = [f for f in found if cap is None or f.storage_id <= cap]
    return sorted(kept, key=lambda f: f.storage_id)


def retry_fate(run: DagsterRun, failed_at: float, now: float, retries_enabled: bool) -> RetryFate:
    """Whether a failed run is final, or Dagster's run retries may still take it over."""
    if run.tags.get(AUTO_RETRY_RUN_ID_TAG):
        return RetryFate.RETRIED
    will_retry = run.tags.get(WILL_RETRY_TAG)
    if will_retry == "true":
        return RetryFate.WAIT if now - failed_at < RETRY_WAIT_LIMIT_S else RetryFate.FINAL
    if will_retry is None and retries_enabled and now - failed_at < UNTAGGED_GRACE_S:
        return RetryFate.WAIT
    return RetryFate.FINAL


def first_error_line(error: SerializableErrorInfo | None, fallback: str) -> str:
    """The first line of the user's error, without Dagster's wrapper or the module path.

    Not shortened here: the message scrubs credentials first, so a cut never splits a secret."""
    while error is not None and error.cls_name in _WRAPPER_ERRORS and error.cause is not None:
        error = error.cause
    text = error.message if error is not None else fallback
    line = next((part.strip() for part in text.splitlines() if part.strip()), fallback)
    return _MODULE_PATH.sub("", line)


def split_partition(key: str | None) -> tuple[str | None, str | None]:
    """(connection, day) of a source partition key; (None, key) for a one-dimension key."""
    if key is None:
        return None, None
    if "|" in key:
        connection, day = key.split("|", 1)
        return connection, day
    return None, key


def day_range(days: set[str]) -> str | None:
    ordered = sorted(d for d in days if d)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    return f"{ordered[0]}..{ordered[-1]} ({len(ordered)} days)"


class RunReport:
    """One finished run's events: which watched subjects it covered and how each ended."""

    _TYPES = {
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.RUN_FAILURE,
    }

    def __init__(self, instance: DagsterInstance, run: DagsterRun, ok: bool, at: float):
        self.run = run
        self.ok = ok
        self.at = at
        self.records = instance.get_records_for_run(run.run_id, of_type=self._TYPES).records

    def _events(self, event_type: DagsterEventType):
        for record in self.records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.event_type == event_type:
                yield record, event

    def error_line(self) -> str:
        for _, event in self._events(DagsterEventType.RUN_FAILURE):
            return first_error_line(event.event_specific_data.error, event.message or "run failed")
        return "run failed"

    def run_signals(self, watched: frozenset[str]) -> list[Signal]:
        planned: dict[tuple[str, str | None], set[str | None]] = defaultdict(set)
        for _, event in self._events(DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
            asset = event.event_specific_data.asset_key.to_user_string()
            if asset in watched:
                connection, day = split_partition(event.event_specific_data.partition)
                planned[(asset, connection)].add(day)
        landed = {
            (e.asset_key.to_user_string(), *split_partition(e.partition))
            for _, e in self._events(DagsterEventType.ASSET_MATERIALIZATION)
        }
        retries = int(self.run.tags.get(RETRY_NUMBER_TAG, 0) or 0)
        signals = []
        for (asset, connection), days in sorted(planned.items(), key=str):
            ok = self.ok or all((asset, connection, d) in landed for d in days)
            signals.append(
                Signal(
                    key=":".join(["run", asset, *([connection] if connection else [])]),
                    ok=ok,
                    asset=asset,
                    run_id=self.run.run_id,
                    at=self.at,
                    connection=connection,
                    partition=day_range(days),
                    detail="" if ok else self.error_line(),
                    retries=retries,
                )
            )
        return signals


def freshness_signals(
    instance: DagsterInstance, limits: Mapping[str, int], now: float
) -> list[Signal]:
    """One signal per asset of `limits` (name -> freshness limit in minutes) whose recorded
    freshness state is FAIL (not ok) or PASS (ok); `at` is when it entered that state."""
    records = instance.get_freshness_state_records([AssetKey(name) for name in limits])
    signals = []
    for name in limits:
        record = records.get(AssetKey(name))
        state = record.freshness_state.value if record is not None else None
        if state not in (STALE, FRESH):
            continue
        ok = state == FRESH
        signals.append(
            Signal(
                key=f"freshness:{name}",
                ok=ok,
                asset=name,
                run_id="",
                at=record.updated_at.timestamp(),
                detail="" if ok else staleness(instance, name, limits[name], now),
                freshness=True,
            )
        )
    return signals


def staleness(instance: DagsterInstance, name: str, limit_minutes: int, now: float) -> str:
    """'not updated for 47 min (limit 30 min)', from the asset's latest materialization."""
    result = instance.fetch_materializations(AssetKey(name), limit=1)
    if result.records:
        text = f"not updated for {max(0, int((now - result.records[0].timestamp) // 60))} min"
    else:
        text = "no materialization recorded"
    return f"{text} (limit {limit_minutes} min)"
