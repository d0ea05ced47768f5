"""The one asset shape every source shares: partitions, policies, cursor, files, metadata.

A source declares itself (declaration.py) with a sync entry `(SourceRun) -> SyncResult`; this
module builds the connection's client with the source's resource, calls the entry, and turns
it into a daily × connection partitioned asset that reads what earlier runs left (the
partition's high-water mark, the connection's pending items) from run storage, writes the
documents and tombstones before reporting them, and records the figures the UI plots: per-day
figures on each partition, the run's own ones named `run_*` (see figures.py).
"""


import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from sync_pipelines.catalog import asset_owners, source_metadata
from sync_pipelines.connections import Connection, CredentialError, RegistryError
from sync_pipelines.documents import Document, Listing, Tombstone, settle
from sync_pipelines.freshness import freshness_policy
from sync_pipelines.metrics import peak_rss_mb
from sync_pipelines.partitions import (
    DATE_DIM,
    PartitionKeyError,
    SyncWindow,
    partition_key,
    source_partitions,
    windows_by_connection,
)
from sync_pipelines.resilience import CallStats, SourcePermanentError
from sync_pipelines.sources import pending as pending_items
from sync_pipelines.sources.figures import (
    DOCUMENTS_KEY,
    CURSOR_KEY,
    HWM_KEY,
    TOMBSTONES_KEY,
    day_figures,
    run_figures,
)
from sync_pipelines.sources.pending import PendingItem

if TYPE_CHECKING:
    from sync_pipelines.sources.declaration import SourceDeclaration

SOURCES_GROUP = "sources"
FILES_KEY = "documents_files"
PENDING_KEY = "pending"  # the connection's pending items after the run (JSON), on each partition
# A month of one connection in at most 3 runs: ceil(31 / 11) = 3.
MAX_DAYS_PER_RUN = 11

SOURCE_RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


@dataclass(frozen=True)
class Previous:
    """What earlier runs left for this one: the partition's mark and the source's own resume
    position (`cursor`, e.g. a mailbox history id; both single-day runs only), and the
    connection's items still waiting to be fetched again."""

    high_water_mark: float | None = None
    pending: tuple[PendingItem, ...] = ()
    cursor: str | None = None


@dataclass(frozen=True)
class SourceRun:
    """What a source's sync entry gets for one connection and window: the client the asset
    built with the source's resource, the parsed options (None without an options model), what
    earlier runs left, and the run's context (other resources, the log)."""

    context: AssetExecutionContext
    connection: Connection
    resource: Any
    client: Any
    options: Any
    window: SyncWindow
    previous: Previous

    @property
    def mark(self) -> float | None:
        return self.previous.high_water_mark

    @property
    def cursor(self) -> str | None:
        return self.previous.cursor


@dataclass(kw_only=True)
class SyncResult:
    """What every source's sync answers; a source's subclass adds its own counters, which the
    asset reports as metadata under their names. `mode` is the window's ('full' or
    'incremental', from `SyncWindow.bounds`); `tombstones`, `listings`, `pending`,
    `given_up` and `cursor` as in SyncOutcome."""

    documents: list[Document]
    high_water_mark: float
    mode: str
    tombstones: list[Tombstone] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    pending: list[PendingItem] = field(default_factory=list)
    given_up: list[PendingItem] = field(default_factory=list)
    cursor: str | None = None


@dataclass
class SyncOutcome:
    """A sync's answer: `tombstones` are records the source says no longer exist (their
    vectors leave the index), `listings` prove what exists in a scope and range (vector_index
    deletes what it holds there that is not listed; documents.Listing), `pending` are items
    not written yet (fetch again next run),
    `given_up` items written flagged after waiting out pending.MAX_WAIT_S; `cursor` is the
    source's own resume position (opaque text) stored on every day of the window and handed
    to the next single-day run of each (SourceRun.cursor); `metadata` holds the run's own
    figures and labels."""

    documents: list[Document]
    high_water_mark: float
    stats: CallStats
    metadata: dict[str, float | int | str] = field(default_factory=dict)
    pending: list[PendingItem] = field(default_factory=list)
    given_up: list[PendingItem] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    cursor: str | None = None

    @classmethod
    def from_result(cls, result, stats: CallStats, **extra) -> "SyncOutcome":
        """From a source's result dataclass: its documents, mark, tombstones and pending/given_up
        items (if it has them), every other field (and `extra`) as metadata under its name."""
        own = {
            "documents", "high_water_mark", "pending", "given_up", "tombstones", "listings",
            "cursor",
        }  # fmt: skip
        metadata = {
            f.name: getattr(result, f.name)
            for f in dataclasses.fields(result)
            if f.name not in own
        }
        return cls(
            result.documents,
            result.high_water_mark,
            stats,
            {**metadata, **extra},
            list(getattr(result, "pending", [])),
            list(getattr(result, "given_up", [])),
            list(getattr(result, "tombstones", [])),
            list(getattr(result, "listings", [])),
            getattr(result, "cursor", None),
        )


def previous_marks(context: AssetExecutionContext, key: str) -> tuple[float | None, str | None]:
    """The mark and the source cursor of the partition's latest materialization (None for
    what it never recorded)."""
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[key]), limit=1
    )
    if not result.records:
        return None, None
    metadata = result.records[0].asset_materialization.metadata
    mark, cursor = metadata.get(HWM_KEY), metadata.get(CURSOR_KEY)
    return (
        float(mark.value) if mark is not None else None,
        str(cursor.value) if cursor is not None else None,
    )


def previous_pending(context: AssetExecutionContext, connection: str) -> list[PendingItem]:
    """The pending list of the connection's latest materialization, whichever day it was:
    every partition of a run stores the connection's whole list."""
    days = context.assets_def.partitions_def.get_partitions_def_for_dimension(DATE_DIM)
    keys = [partition_key(day, connection) for day in days.get_partition_keys()]
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=keys), limit=1
    )
    if not result.records:
        return []
    entry = result.records[0].asset_materialization.metadata.get(PENDING_KEY)
    if entry is None:
        return []
    try:
        return pending_items.from_json(entry.value)
    except ValueError as exc:
        raise ValueError(f"connection '{connection}': {exc}") from None


def still_pending(
    outcome: SyncOutcome, carried: list[PendingItem], latest: list[PendingItem]
) -> list[PendingItem]:
    """The sync's pending items plus any another run of the connection added meanwhile
    (possible when the source's pool allows two runs at once), so none is lost."""
    known = {i.doc_id for i in carried} | {i.doc_id for i in outcome.pending}
    known |= {d.doc_id for d in outcome.documents} | {t.doc_id for t in outcome.tombstones}
    return outcome.pending + [i for i in latest if i.doc_id not in known]


def run_sync(spec, context, connection, options, window, previous) -> SyncOutcome:
    """Build the connection's client, run the source's sync entry, close the client."""
    resource = getattr(context.resources, spec.name)
    client = resource.client_for(connection)
    try:
        result = spec.sync(
            SourceRun(context, connection, resource, client, options, window, previous)
        )
    finally:
        client.close()
    if isinstance(result, SyncOutcome):
        return result
    return SyncOutcome.from_result(result, client.stats)


def build_source_asset(spec: "SourceDeclaration") -> AssetsDefinition:
    @asset(
        name=spec.name,
        group_name=SOURCES_GROUP,
        description=spec.description,
        partitions_def=source_partitions(spec.name),
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
        retry_policy=SOURCE_RETRY_POLICY,
        required_resource_keys={
            spec.name,
            "connections",
            "documents",
            *spec.extra_resource_keys,
        },
        kinds=set(spec.kinds) | {spec.name, "python"},
        pool=spec.pool,
        tags={"sync/source": spec.name},
        owners=asset_owners(),
        metadata=source_metadata(spec),
        freshness_policy=freshness_policy(spec.freshness_minutes),
    )
    def _source_asset(context: AssetExecutionContext) -> MaterializeResult:
        started = time.monotonic()
        try:
            windows = windows_by_connection(list(context.partition_keys))
        except PartitionKeyError as exc:
            raise Failure(f"{spec.name}: {exc}", allow_retries=False) from exc
        registry = context.resources.connections
        files = context.resources.documents.files()
        totals: dict[str, float] = {}
        labels: dict[str, str] = {}
        per_partition: dict[str, dict] = {}
        failures = []
        for window in windows:
            label = f"{spec.name} connection '{window.connection}'"
            try:
                connection = registry.get(spec.name, window.connection)
                hwm = cursor = None
                if len(window.days) == 1:
                    key = partition_key(window.days[0], window.connection)
                    hwm, cursor = previous_marks(context, key)
                carried = previous_pending(context, window.connection)
                context.log.info(
                    f"{label}: days {window.days[0]}..{window.days[-1]}, previous mark {hwm}, "
                    f"{len(carried)} pending items"
                )
                options = spec.parse_options(connection)
                previous = Previous(hwm, tuple(carried), cursor)
                outcome = run_sync(spec, context, connection, options, window, previous)
            # Rejected credentials and answers that will not change (404, 400, 410, 422, ...).
            except (SourcePermanentError, CredentialError, RegistryError, ValueError) as exc:
                failures.append((label, exc, False))
                continue
            except Exception as exc:  # transient after client retries: Dagster may retry the run
                failures.append((label, exc, True))
                continue
            # One entry per doc_id, as the file holds (documents.settle): the counts are the file's.
            outcome.documents, outcome.tombstones = settle(outcome.documents, outcome.tombstones)
            path = files.write(
                spec.name,
                window.connection,
                context.run_id,
                outcome.documents,
                outcome.tombstones,
                outcome.listings,
            )
            pending = still_pending(
                outcome, carried, previous_pending(context, window.connection)
            )
            days = day_figures(
                window,
                outcome.documents,
                outcome.high_water_mark,
                pending,
                outcome.given_up,
                spec.partition_time,
                outcome.tombstones,
            )
            for day, figures in days.items():
                per_partition[partition_key(day, window.connection)] = {
                    **figures,
                    FILES_KEY: MetadataValue.json([str(path)]),
                    PENDING_KEY: MetadataValue.json(pending_items.to_json(pending)),
                    **({CURSOR_KEY: outcome.cursor} if outcome.cursor is not None else {}),
                }
            for name, value in {**outcome.stats.as_metadata(), **outcome.metadata}.items():
                if isinstance(value, (int, float)):
                    totals[name] = totals.get(name, 0) + value
                else:
                    labels[name] = value
            totals[DOCUMENTS_KEY] = totals.get(DOCUMENTS_KEY, 0) + len(outcome.documents)
            totals[TOMBSTONES_KEY] = totals.get(TOMBSTONES_KEY, 0) + len(outcome.tombstones)
            context.log.info(
                f"{label}: {len(outcome.documents)} documents, "
                f"{len(outcome.tombstones)} tombstones -> {path}, "
                f"{len(pending)} pending, {len(outcome.given_up)} written after waiting"
            )
        if failures:
            message = "; ".join(
                str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
                for label, exc, _ in failures
            )
            retryable = all(retry for _, _, retry in failures)
            raise Failure(message, allow_retries=None if retryable else False)
        for key, figures in per_partition.items():
            context.add_asset_metadata(figures, partition_key=key)
        run_level = run_figures(
            {
                **totals,
                "duration_s": time.monotonic() - started,
                "peak_memory_mb": peak_rss_mb(),
            }
        )
        return MaterializeResult(metadata={**run_level, **labels})

    return _source_asset

