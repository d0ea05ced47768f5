"""Staggered schedules generated from the source declarations, one per `<source>_sync` job.

Each tick requests today's partition (and yesterday's during the first hour after midnight, so
the closed day gets its last changes) for every active connection, with run keys that make a
re-evaluated tick launch nothing twice. A disabled or unconfigured source requests nothing
and says why in the tick's skip reason, which the UI shows.
"""

from datetime import timedelta, timezone
from typing import TYPE_CHECKING

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from sync_pipelines.connections import RegistryError
from sync_pipelines.partitions import connections_partitions_name, partition_key
from sync_pipelines.resources import ConnectionRegistry

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export the type
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

    from sync_pipelines.sources.declaration import SourceDeclaration

YESTERDAY_GRACE = timedelta(hours=1)


def partition_days(scheduled_at) -> list[str]:
    now = scheduled_at.astimezone(timezone.utc)
    today = now.date()
    days = [today.isoformat()]
    if now - now.replace(hour=0, minute=0, second=0, microsecond=0) < YESTERDAY_GRACE:
        days.insert(0, (today - timedelta(days=1)).isoformat())
    return days


def active_connection_ids(
    entry: "SourceDeclaration", connections: ConnectionRegistry
) -> list[str] | SkipReason:
    """The source's active connections, or why a tick requests nothing (switched off, or
    an unusable registry)."""
    reason = entry.disabled_reason()
    if reason:
        return SkipReason(reason)
    try:
        return [c.id for c in connections.active(entry.name)]
    except RegistryError as exc:
        return SkipReason(f"connection registry is invalid: {exc}")


def build_source_schedule(entry: "SourceDeclaration", job: "UnresolvedAssetJobDefinition"):
    """The schedule of `entry`, launching its runs as `job` (named, so the runs list shows a
    target rather than an anonymous asset job)."""

    @schedule(
        name=f"{entry.name}_schedule",
        cron_schedule=entry.cron,
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"{entry.cadence.capitalize()} (cron '{entry.cron}' UTC): today's {entry.name} "
            "partition of each active connection, and yesterday's just after midnight."
        ),
    )
    def source_schedule(context: ScheduleEvaluationContext, connections: ConnectionRegistry):
        active = active_connection_ids(entry, connections)
        if isinstance(active, SkipReason):
            return active
        if not active:
            return SkipReason(
                f"{entry.name} has no active connection in {connections.path} "
                "(and no standard credentials in the environment)"
            )
        known = set(context.instance.get_dynamic_partitions(connections_partitions_name(entry.name)))
        pending = [c for c in active if c not in known]
        if pending:
            context.log.info(f"waiting for connections_sensor to add partitions for {pending}")
        scheduled_at = context.scheduled_execution_time
        requests = [
            RunRequest(
                run_key=f"{entry.name}:{conn}:{day}:{scheduled_at.isoformat()}",
                partition_key=partition_key(day, conn),
                tags={"sync/source": entry.name, "sync/connection": conn, "sync/group": entry.group},
            )
            for conn in active
            if conn in known
            for day in partition_days(scheduled_at)
        ]
        return requests or SkipReason(f"partitions for {pending} do not exist yet")

    return source_schedule
