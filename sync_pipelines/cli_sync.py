"""`sync-pipelines sync`: sync one connection of a source for a day or a range of days, now.

Why: a partition key `<connection>|<YYYY-MM-DD>` exists only once the connection's dynamic
partition does, and the connections sensor adds it on its next tick; until then
`dagster asset materialize --partition 'acme|2026-11-20'` fails with DagsterInvalidSubsetError.
This command checks the connection in the registry, adds its partition itself, and
materializes the days in this process against $DAGSTER_HOME's instance, in runs of at most
MAX_DAYS_PER_RUN days (the asset's backfill policy), with the code location's resources.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Sequence

from sync_pipelines import clock, partitions
from sync_pipelines.partitions import DATE_DIM, connections_partitions_name, partition_key
from sync_pipelines.sources.base import MAX_DAYS_PER_RUN
from sync_pipelines.sources.figures import DOCUMENTS_KEY

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RANGE_START = "dagster/asset_partition_range_start"
_RANGE_END = "dagster/asset_partition_range_end"
# The asset's own progress lines (days, documents written) without the engine's debug events.
_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class SyncInputError(ValueError):
    """The command line or the setup cannot be used; the message says what to change."""


@dataclass(frozen=True)
class RunOutcome:
    success: bool
    documents: int
    run_id: str
    error: str = ""


def parse_day(value: str, option: str) -> date:
    if not _DAY.match(value or ""):
        raise SyncInputError(f"{option} {value!r} is not a date in YYYY-MM-DD form")
    try:
        return partitions.parse_day(value).date()
    except partitions.PartitionKeyError:
        raise SyncInputError(f"{option} {value!r} is not a calendar date") from None


def requested_days(
    day: str | None, start: str | None, end: str | None, first: date, today: date
) -> list[str]:
    """The days asked for, checked: one of --day or --from[/--to], from <= to, and every day
    a partition (from `first`, the partitions' start, to `today`; --to defaults to today)."""
    if day is not None and (start is not None or end is not None):
        raise SyncInputError("give either --day or --from/--to, not both")
    if day is None and start is None:
        raise SyncInputError("give --day YYYY-MM-DD, or --from YYYY-MM-DD [--to YYYY-MM-DD]")
    if day is not None:
        lo = hi = parse_day(day, "--day")
    else:
        lo = parse_day(start, "--from")
        hi = parse_day(end, "--to") if end is not None else today
        if lo > hi:
            raise SyncInputError(f"--from {lo} is after --to {hi}")
    if hi > today:
        raise SyncInputError(f"{hi} is after today ({today} UTC): there is nothing to sync yet")
    if lo < first:
        raise SyncInputError(
            f"{lo} is before the first partition ({first}; SYNC_START_DATE sets it)"
        )
    return [(lo + timedelta(days=n)).isoformat() for n in range((hi - lo).days + 1)]


def day_ranges(days: Sequence[str]) -> list[tuple[str, ...]]:
    """Consecutive runs of at most MAX_DAYS_PER_RUN days, as the asset's backfill policy."""
    step = MAX_DAYS_PER_RUN
    return [tuple(days[i : i + step]) for i in range(0, len(days), step)]


def instance_from_env():
    """$DAGSTER_HOME's instance: the one the code location's daemon and UI read."""
    from dagster import DagsterError, DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        raise SyncInputError(
            "DAGSTER_HOME is not set: point it at the instance folder the code location uses "
            "(an absolute path), so the runs land where the UI and vector_index see them"
        )
    try:
        return DagsterInstance.get()
    except DagsterError as exc:  # e.g. not absolute, not a folder: Dagster's message says which
        raise SyncInputError(f"cannot open the Dagster instance: {exc}") from None


def register_partition(instance, source: str, connection: str) -> bool:
    """Add the connection's dynamic partition unless it exists (as the sensor would); True if
    added."""
    name = connections_partitions_name(source)
    if instance.has_dynamic_partition(name, connection):
        return False
    instance.add_dynamic_partitions(name, [connection])
    return True


def materialize_days(instance, asset, resources: dict, connection: str, days: Sequence[str]):
    """One run over `days` (consecutive, at most MAX_DAYS_PER_RUN) of one connection."""
    from dagster import materialize

    options: dict = {}
    if len(days) == 1:
        options["partition_key"] = partition_key(days[0], connection)
    else:
        options["tags"] = {
            _RANGE_START: str(partition_key(days[0], connection)),
            _RANGE_END: str(partition_key(days[-1], connection)),
        }
    result = materialize(
        [asset],
        instance=instance,
        resources={k: v for k, v in resources.items() if k in asset.required_resource_keys},
        raise_on_error=False,
        run_config=_RUN_CONFIG,
        **options,
    )
    node = asset.key.to_user_string()
    documents = sum(
        int(event.metadata[DOCUMENTS_KEY].value)
        for event in result.asset_materializations_for_node(node)
        if DOCUMENTS_KEY in event.metadata
    )
    errors = [_failure_text(e.step_failure_data) for e in result.all_events if e.is_step_failure]
    return RunOutcome(result.success, documents, result.run_id, "; ".join(errors))


def _say(line: str) -> None:
    print(line, flush=True)  # between Dagster's own log lines, in order


def _failure_text(data) -> str:
    """A `Failure`'s own description, else the error's message."""
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return data.error.message.strip() if data.error is not None else "step failed"


def run_sync(
    source: str,
    connection: str,
    day: str | None,
    start: str | None,
    end: str | None,
) -> int:
    """Check, register, materialize; 0 if every run succeeded, 1 if one failed, 2 on bad input."""
    from sync_pipelines.connections import RegistryError
    from sync_pipelines.definitions import SOURCE_ASSETS, build_resources

    assets = {a.key.to_user_string(): a for a in SOURCE_ASSETS}
    asset = assets.get(source)
    try:
        if asset is None:
            raise SyncInputError(f"unknown source {source!r}; sources: {', '.join(assets)}")
        dates = asset.partitions_def.get_partitions_def_for_dimension(DATE_DIM)
        days = requested_days(day, start, end, dates.start.date(), clock.today())
        resources = build_resources()
        resources["connections"].get(source, connection)  # active, else a clear error
        instance = instance_from_env()
    except (SyncInputError, RegistryError) as exc:
        print(f"sync-pipelines sync: {exc}", file=sys.stderr)
        return 2
    with instance:
        if register_partition(instance, source, connection):
            _say(f"registered {source} connection '{connection}' as a partition")
        ranges = day_ranges(days)
        for n, run_days in enumerate(ranges, 1):
            span = run_days[0] if len(run_days) == 1 else f"{run_days[0]}..{run_days[-1]}"
            count = f"{len(run_days)} partition" + ("s" if len(run_days) > 1 else "")
            _say(f"run {n}/{len(ranges)}: {source} '{connection}' {span} ({count})")
            outcome = materialize_days(instance, asset, resources, connection, run_days)
            status = "SUCCESS" if outcome.success else "FAILURE"
            _say(f"  {status}: {outcome.documents} documents written (run {outcome.run_id})")
            if not outcome.success:
                _say(f"  {outcome.error or 'see the run in the UI'}")
                left = sum(len(r) for r in ranges[n:])
                if left:
                    _say(f"stopped: {len(ranges) - n} run(s), {left} day(s) not synced")
                return 1
    return 0
