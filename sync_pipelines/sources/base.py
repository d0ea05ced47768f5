"""The one asset shape every source shares: partitions, policies, cursor, files, metadata.

A source provides only `sync(context, connection, window, high_water_mark) -> SyncOutcome`;
this module turns it into a daily × connection partitioned asset that reads its previous
high-water mark from run storage, writes the documents before reporting them, and records the
figures the UI plots.
"""


import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

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

from sync_pipelines.connections import Connection, CredentialError, RegistryError
from sync_pipelines.documents import Document
from sync_pipelines.metrics import peak_rss_mb
from sync_pipelines.partitions import (
    CONNECTION_DIM,
    PartitionKeyError,
    SyncWindow,
    partition_key,
    source_partitions,
    window_from_keys,
)
from sync_pipelines.resilience import CallStats, SourceAuthError

SOURCES_GROUP = "sources"
HWM_KEY = "high_water_mark"
FILES_KEY = "documents_files"
# A month of one connection in at most 3 runs: ceil(31 / 11) = 3.
MAX_DAYS_PER_RUN = 11

SOURCE_RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


@dataclass
class SyncOutcome:
    documents: list[Document]
    high_water_mark: float
    stats: CallStats
    metadata: dict[str, float | int | str] = field(default_factory=dict)

    @classmethod
    def from_result(cls, result, stats: CallStats, **extra) -> "SyncOutcome":
        """From a source's result dataclass: its documents and mark, every other field (and
        `extra`) as materialization metadata under the field's name."""
        metadata = {
            f.name: getattr(result, f.name)
            for f in dataclasses.fields(result)
            if f.name not in ("documents", "high_water_mark")
        }
        return cls(result.documents, result.high_water_mark, stats, {**metadata, **extra})


SyncFn = Callable[[AssetExecutionContext, Connection, SyncWindow, float | None], SyncOutcome]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    sync_resource_key: str
    description: str
    sync: SyncFn
    kinds: frozenset[str] = frozenset()
    # Resources the sync reads besides its own (e.g. Tempo resolves issues through Jira).
    extra_resource_keys: frozenset[str] = frozenset()


def previous_high_water_mark(context: AssetExecutionContext, key: str) -> float | None:
    """The mark of the partition's latest materialization, or None if it never landed."""
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[key]), limit=1
    )
    if not result.records:
        return None
    entry = result.records[0].asset_materialization.metadata.get(HWM_KEY)
    return float(entry.value) if entry is not None else None


def group_by_connection(partition_keys: list) -> list[SyncWindow]:
    """One window per connection: a backfill range may span several connections."""
    by_connection: dict[str, list] = {}
    for key in partition_keys:
        dims = getattr(key, "keys_by_dimension", None)
        conn = dims[CONNECTION_DIM] if dims else str(key).split("|")[0]
        by_connection.setdefault(conn, []).append(key)
    return [window_from_keys(keys) for _, keys in sorted(by_connection.items())]


def build_source_asset(spec: SourceSpec) -> AssetsDefinition:
    @asset(
        name=spec.name,
        group_name=SOURCES_GROUP,
        description=spec.description,
        partitions_def=source_partitions(spec.name),
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
        retry_policy=SOURCE_RETRY_POLICY,
        required_resource_keys={
            spec.sync_resource_key,
            "connections",
            "documents",
            *spec.extra_resource_keys,
        },
        kinds=set(spec.kinds) | {"python"},
        pool=f"{spec.name}_api",
        tags={"sync/source": spec.name},
    )
    def _source_asset(context: AssetExecutionContext) -> MaterializeResult:
        started = time.monotonic()
        try:
            windows = group_by_connection(list(context.partition_keys))
        except PartitionKeyError as exc:
            raise Failure(f"{spec.name}: {exc}", allow_retries=False) from exc
        registry = context.resources.connections
        files = context.resources.documents.files()
        totals: dict[str, float] = {}
        labels: dict[str, str] = {}
        paths, marks, failures = [], [], []
        for window in windows:
            label = f"{spec.name} connection '{window.connection}'"
            try:
                connection = registry.get(spec.name, window.connection)
                hwm = None
                if len(window.days) == 1:
                    key = partition_key(window.days[0], window.connection)
                    hwm = previous_high_water_mark(context, key)
                context.log.info(
                    f"{label}: days {window.days[0]}..{window.days[-1]}, previous mark {hwm}"
                )
                outcome = spec.sync(context, connection, window, hwm)
            except (SourceAuthError, CredentialError, RegistryError, ValueError) as exc:
                failures.append((label, exc, False))
                continue
            except Exception as exc:  # transient after client retries: Dagster may retry the run
                failures.append((label, exc, True))
                continue
            path = files.write(spec.name, window.connection, context.run_id, outcome.documents)
            paths.append(str(path))
            marks.append(outcome.high_water_mark)
            for name, value in {**outcome.stats.as_metadata(), **outcome.metadata}.items():
                if isinstance(value, (int, float)):
                    totals[name] = totals.get(name, 0) + value
                else:
                    labels[name] = value
            totals["documents_written"] = totals.get("documents_written", 0) + len(
                outcome.documents
            )
            context.log.info(f"{label}: {len(outcome.documents)} documents -> {path}")
        if failures:
            message = "; ".join(
                str(exc) if str(exc).startswith(label) else f"{label}: {exc}"
                for label, exc, _ in failures
            )
            retryable = all(retry for _, _, retry in failures)
            raise Failure(message, allow_retries=None if retryable else False)
        metadata = {
            **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in totals.items()},
            **labels,
            "dagster/row_count": int(totals.get("documents_written", 0)),
            HWM_KEY: min(marks),
            "high_water_mark_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(marks))),
            FILES_KEY: MetadataValue.json(paths),
            "duration_s": round(time.monotonic() - started, 3),
            "peak_memory_mb": peak_rss_mb(),
        }
        return MaterializeResult(metadata=metadata)

    return _source_asset

