"""Sensors that keep Dagster's view of the world in step with the connection registry."""


from typing import Sequence

from dagster import (
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sync_pipelines.connections import RegistryError
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry


def partition_changes(
    registry: ConnectionRegistry, sources: Sequence[str], existing: dict[str, set[str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """Per source: (keys to add, keys to delete) so partitions = active connections."""
    connections = registry.all()
    changes = {}
    for source in sources:
        active = {c.id for c in connections if c.source == source and c.active}
        have = existing.get(source, set())
        changes[source] = (sorted(active - have), sorted(have - active))
    return changes


def build_connections_sensor(sources: Sequence[str]):
    @sensor(
        name="connections_sensor",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Keeps one dynamic partition per active connection of each source. A deactivated "
            "connection's partition is removed (its history stays in the event log and shows "
            "again if it is re-activated)."
        ),
    )
    def connections_sensor(context: SensorEvaluationContext, connections: ConnectionRegistry):
        existing = {
            source: set(context.instance.get_dynamic_partitions(connections_partitions_name(source)))
            for source in sources
        }
        try:
            changes = partition_changes(connections, sources, existing)
        except RegistryError as exc:
            return SkipReason(f"connection registry is invalid, nothing changed: {exc}")
        requests = []
        summary = []
        for source, (add, delete) in changes.items():
            name = connections_partitions_name(source)
            if add:
                requests.append(DynamicPartitionsDefinition(name=name).build_add_request(add))
                summary.append(f"{source}: +{add}")
            if delete:
                requests.append(DynamicPartitionsDefinition(name=name).build_delete_request(delete))
                summary.append(f"{source}: -{delete}")
        if not requests:
            return SkipReason("partitions already match the active connections")
        context.log.info("; ".join(summary))
        return SensorResult(dynamic_partitions_requests=requests)

    return connections_sensor

