"""Reconciliation: the periodic listing that finds what was deleted without a signal.

Some APIs show a deletion only by absence (a record deleted or moved out of the scope a
connection reads). A source that declares `reconcile=Reconciliation(...)` gets a
`<source>_reconcile` asset, partitioned by connection, its `<source>_reconciliation` job and
a daily `<source>_reconcile_schedule` (staggered by the declaration) in
its own pool `<source>_reconcile`, so a 30-day listing never holds the syncs' slot. A run lists
the connection's last N days with the source's cheapest call and writes the listings to a
documents file like any sync; vector_index compares each listing with what it holds in that
scope and range and deletes the difference (updater.py). A run that fails anywhere writes
nothing, so a failed or partial listing deletes nothing; a listing outside the source's own
connection scope is refused before it is written.
"""


import time
from datetime import datetime, time as day_time, timedelta, timezone
from typing import TYPE_CHECKING

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
)

from sync_pipelines import clock
from sync_pipelines.catalog import asset_owners
from sync_pipelines.connections import CredentialError, RegistryError
from sync_pipelines.documents import Listing
from sync_pipelines.metrics import peak_rss_mb
from sync_pipelines.partitions import SyncWindow, connections_partitions_name
from sync_pipelines.resilience import SourcePermanentError
from sync_pipelines.resources import ConnectionRegistry
from sync_pipelines.schedules import active_connection_ids
from sync_pipelines.sources.base import FILES_KEY, SOURCE_RETRY_POLICY, Previous, SourceRun
from sync_pipelines.sources.figures import run_figures

if TYPE_CHECKING:
    from sync_pipelines.sources.declaration import SourceDeclaration

RECONCILE_GROUP = "reconciliation"


def reconcile_name(source: str) -> str:
    return f"{source}_reconcile"


def reconcile_job_name(source: str) -> str:
    return f"{source}_reconciliation"


def reconcile_window(connection: str, days: int) -> SyncWindow:
    """The last `days` whole UTC days, today included (its upper bound is `now`)."""
    today = clock.today()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, day_time(), tzinfo=timezone.utc)
    return SyncWindow(
        connection=connection,
        start=start,
        end=datetime.combine(today + timedelta(days=1), day_time(), tzinfo=timezone.utc),
        days=tuple((first + timedelta(days=n)).isoformat() for n in range(days)),
    )


def checked_listings(spec: "SourceDeclaration", connection: str, listings) -> list[Listing]:
    """The lister's answer, refused whole if any listing is not one or reaches outside the
    connection's own documents (a listing deletes what it does not name in its scope)."""
    own = f"{spec.name}:{connection}:"
    checked = []
    for item in listings:
        if not isinstance(item, Listing):
            kind = type(item).__name__
            raise TypeError(f"{spec.name} reconciliation answered {kind}, not Listing")
        if not item.scope.startswith(own):
            raise ValueError(
                f"{spec.name} reconciliation listed scope {item.scope!r}, outside {own!r}"
            )
        checked.append(item)
    return checked


def list_connection(spec: "SourceDeclaration", context, connection_id: str):
    """Run the source's lister for one connection; answers (listings, call stats, window)."""
    connection = context.resources.connections.get(spec.name, connection_id)
    options = spec.parse_options(connection)
    window = reconcile_window(connection_id, spec.reconcile.days)
    resource = getattr(context.resources, spec.name)
    client = resource.client_for(connection)
    try:
        run = SourceRun(context, connection, resource, client, options, window, Previous())
        listings = checked_listings(spec, connection_id, spec.reconcile.list_ids(run))
    finally:
        client.close()
    return listings, client.stats, window


def build_reconcile_asset(spec: "SourceDeclaration") -> AssetsDefinition:
    name = reconcile_name(spec.name)
    days = spec.reconcile.days

    @asset(
        name=name,
        group_name=RECONCILE_GROUP,
        description=(
            f"Lists which {spec.name} records of the last {days} days still exist (ids only, "
            f"daily at cron '{spec.reconcile.cron}' UTC); vector_index deletes what it holds "
            "there that is no longer listed. A failed listing deletes nothing."
        ),
        partitions_def=DynamicPartitionsDefinition(name=connections_partitions_name(spec.name)),
        retry_policy=SOURCE_RETRY_POLICY,
        required_resource_keys={spec.name, "connections", "documents", *spec.extra_resource_keys},
        kinds={spec.name, "python"},
        pool=spec.reconcile_pool,
        tags={"sync/source": spec.name, "sync/kind": "reconcile"},
        owners=asset_owners(),
        metadata={
            "api_docs": MetadataValue.url(spec.docs_url),
            "cadence": f"daily, by {name}_schedule (job {reconcile_job_name(spec.name)})",
            "cron": f"{spec.reconcile.cron} (UTC)",
            "range": f"the last {days} days",
            "pool": spec.reconcile_pool,
        },
    )
    def _reconcile(context: AssetExecutionContext) -> MaterializeResult:
        started = time.monotonic()
        files = context.resources.documents.files()
        written, listed, scopes = [], 0, 0
        totals: dict[str, float] = {}
        window = None
        for connection_id in sorted(context.partition_keys):
            label = f"{name} connection '{connection_id}'"
            try:
                listings, stats, window = list_connection(spec, context, connection_id)
            except (SourcePermanentError, CredentialError, RegistryError, ValueError) as exc:
                raise Failure(f"{label}: {exc}; nothing deleted", allow_retries=False) from exc
            except Exception as exc:
                raise Failure(f"{label}: {exc}; nothing deleted") from exc
            path = files.write(spec.name, connection_id, context.run_id, [], [], listings)
            written.append(str(path))
            count = sum(len(item.doc_ids) for item in listings)
            listed += count
            scopes += len(listings)
            for key, value in stats.as_metadata().items():
                if isinstance(value, (int, float)):
                    totals[key] = totals.get(key, 0) + value
            context.log.info(
                f"{label}: {len(listings)} listings of {count} ids over {window.days[0]}.."
                f"{window.days[-1]} -> {path}"
            )
        return MaterializeResult(
            metadata={
                FILES_KEY: MetadataValue.json(written),
                "ids_listed": listed,
                "listings": scopes,
                "range_days": days,
                "range": f"{window.days[0]}..{window.days[-1]}" if window else "",
                **run_figures(
                    {
                        **totals,
                        "duration_s": time.monotonic() - started,
                        "peak_memory_mb": peak_rss_mb(),
                    }
                ),
            }
        )

    return _reconcile


def build_reconcile_job(spec: "SourceDeclaration", asset_def: AssetsDefinition):
    return define_asset_job(
        reconcile_job_name(spec.name),
        selection=AssetSelection.assets(asset_def),
        description=f"List which {spec.name} records still exist, for deletions (a connection).",
        tags={"sync/source": spec.name, "sync/group": spec.group, "sync/kind": "reconcile"},
    )


def build_reconcile_schedule(spec: "SourceDeclaration", job):
    """Daily at the declaration's time: one run per active connection with a partition."""
    name = reconcile_name(spec.name)

    @schedule(
        name=f"{name}_schedule",
        cron_schedule=spec.reconcile.cron,
        execution_timezone="UTC",
        job=job,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"Daily (cron '{spec.reconcile.cron}' UTC): list the last {spec.reconcile.days} days "
            f"of each active {spec.name} connection, so deletions reach the index."
        ),
    )
    def reconcile_schedule(context: ScheduleEvaluationContext, connections: ConnectionRegistry):
        active = active_connection_ids(spec, connections)
        if isinstance(active, SkipReason):
            return active
        known = set(context.instance.get_dynamic_partitions(connections_partitions_name(spec.name)))
        ready = [c for c in active if c in known]
        if not ready:
            return SkipReason(f"{spec.name} has no active connection with a partition yet")
        scheduled_at = context.scheduled_execution_time.isoformat()
        return [
            RunRequest(
                run_key=f"{name}:{conn}:{scheduled_at}",
                partition_key=conn,
                tags={
                    "sync/source": spec.name,
                    "sync/connection": conn,
                    "sync/group": spec.group,
                    "sync/kind": "reconcile",
                },
            )
            for conn in ready
        ]

    return reconcile_schedule
