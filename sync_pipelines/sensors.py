"""Sensors that keep Dagster's view of the world in step with the connection registry.

Deleting a dynamic partition hides a connection's history and stops its runs, so the sensor
only deletes what a usable registry file says is gone. A registry that cannot be used, or an
entry that became invalid, changes nothing; it is reported in the tick's skip reason, its log,
and once per problem as an alert (the dedupe lives in the sensor's cursor).
"""

import json
from collections.abc import Sequence

from dagster import (
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from sync_pipelines.alerts import AlertDeliveryError, AlertsResource
from sync_pipelines.connections import Registry, RegistryError
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry

REGISTRY_FILE_PROBLEM = "registry-file"  # alert key of a registry that cannot be used at all
MAX_LISTED_PROBLEMS = 10


def plan_changes(
    registry: Registry, sources: Sequence[str], existing: dict[str, set[str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """Per source: (keys to add, keys to delete). Every active connection gets a partition;
    one goes only when the registry may remove it (`Registry.may_remove`)."""
    changes = {}
    for source in sources:
        active = {c.id for c in registry.active(source)}
        have = existing.get(source, set())
        gone = [k for k in sorted(have - active) if registry.may_remove(source, k)]
        changes[source] = (sorted(active - have), gone)
    return changes


def partition_changes(
    registry: ConnectionRegistry, sources: Sequence[str], existing: dict[str, set[str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """`plan_changes` for the registry the resource reads (raises RegistryError if unusable)."""
    return plan_changes(registry.load(), sources, existing)


def _listed(problems: Sequence[str]) -> str:
    more = len(problems) - MAX_LISTED_PROBLEMS
    return "; ".join(problems[:MAX_LISTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")


def alert_new_problems(
    context: SensorEvaluationContext, alerts: AlertsResource, problems: dict[str, str]
) -> str:
    """Post the problems (key -> text) not alerted yet, in one message; the new cursor.

    Fixed problems are forgotten, so one that comes back alerts again; a post the alert channel refused
    is tried again next tick."""
    alerted = set(json.loads(context.cursor or "[]")) & set(problems)
    new = sorted(set(problems) - alerted)
    if new and alerts.configured:
        lines = [f"• {problems[key]}" for key in new[:MAX_LISTED_PROBLEMS]]
        if len(new) > MAX_LISTED_PROBLEMS:
            lines.append(f"• and {len(new) - MAX_LISTED_PROBLEMS} more (see connections_sensor)")
        text = (
            f":warning: connection registry: {len(new)} new problem(s). Other connections keep "
            "syncing; partitions of these entries are kept until fixed.\n" + "\n".join(lines)
        )
        try:
            alerts.post(text)
            alerted.update(new)
        except AlertDeliveryError as exc:
            context.log.warning(f"registry alert not delivered, trying again next tick: {exc}")
    return json.dumps(sorted(alerted))


def build_connections_sensor(sources: Sequence[str]):
    @sensor(
        name="connections_sensor",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Keeps one dynamic partition per active connection of each source. A connection "
            "set inactive or removed from a valid registry file loses its partition (its history "
            "stays in the event log and shows again if it is re-activated). An empty, missing or "
            "unreadable registry, or an invalid entry, removes nothing and is reported here and "
            "as an alert."
        ),
    )
    def connections_sensor(
        context: SensorEvaluationContext, connections: ConnectionRegistry, alerts: AlertsResource
    ):
        try:
            registry = connections.load()
        except RegistryError as exc:
            context.log.warning(str(exc))
            return SensorResult(
                skip_reason=f"connection registry unusable, no partition changed: {exc}",
                cursor=alert_new_problems(context, alerts, {REGISTRY_FILE_PROBLEM: str(exc)}),
            )
        existing = {
            source: set(
                context.instance.get_dynamic_partitions(connections_partitions_name(source))
            )
            for source in sources
        }
        requests, summary = [], []
        for source, (add, delete) in plan_changes(registry, sources, existing).items():
            partitions = DynamicPartitionsDefinition(name=connections_partitions_name(source))
            if add:
                requests.append(partitions.build_add_request(add))
                summary.append(f"{source}: +{add}")
            if delete:
                requests.append(partitions.build_delete_request(delete))
                summary.append(f"{source}: -{delete}")
        if summary:
            context.log.info("; ".join(summary))
        else:
            summary.append("partitions already match the active connections")
        if not registry.from_file:
            summary.append(f"connections from {registry.origin}: partitions are only added")
        if registry.problems:
            listed = _listed([str(p) for p in registry.problems])
            context.log.warning(f"invalid registry entries: {listed}")
            summary.append(
                f"{len(registry.problems)} invalid registry entr"
                f"{'y' if len(registry.problems) == 1 else 'ies'} (their partitions are kept, "
                f"other connections sync): {listed}"
            )
        cursor = alert_new_problems(context, alerts, {p.key: str(p) for p in registry.problems})
        return SensorResult(
            dynamic_partitions_requests=requests, skip_reason="; ".join(summary), cursor=cursor
        )

    return connections_sensor
