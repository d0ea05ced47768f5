"""The sync entry every CRM source declares: `sync=crm_sync(TABLES)`.

It turns the partition window into the records' updated-time bounds (`SyncWindow.bounds` with
the partition's mark and the source's overlap), builds the run's CrmRun (page size: the
connection's option, else the `warehouse` resource's, i.e. SYNC_CRM_PAGE_SIZE or 200), loads
the tables through dlt (loader.py) into the `warehouse` destination and answers the documents,
tombstones and figures the shared asset writes and plots: rows loaded and soft-deleted per
table, pages, records, the client's calls and 429s (added by the asset), the destination.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import Field

from sync_pipelines.resilience import CallStats, SourcePermanentError
from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.warehouse.loader import column_name, load
from sync_pipelines.warehouse.tables import CrmRun, Table

RESOURCE_KEY = "warehouse"
DEFAULT_OVERLAP_S = 300.0  # re-read the last 5 minutes: vendors index updates late

Tables = Sequence[Table] | Callable[[CrmRun], Sequence[Table]]


class CrmOptions(OptionsModel):
    """Options every CRM connection accepts; a source's options model extends it."""

    page_size: int | None = Field(
        default=None, ge=1, description="Records per API page (capped at the vendor's max)."
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Records dlt buffers before writing a file; a load starts once this "
        "many are read.",
    )


def _option(run: SourceRun, name: str) -> int | None:
    return getattr(run.options, name, None) if run.options is not None else None


def _checked(tables: Sequence[Table], source: str) -> list[Table]:
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: table names repeat: {names}")
    for table in tables:
        if not table.primary_key:
            raise ValueError(f"{source}.{table.name}: a table needs a primary key")
    return list(tables)


def _refuse_if_off(source: str) -> None:
    """A gated source's asset still shows; a run launched by hand says why it does nothing."""
    from sync_pipelines.sources import registry

    try:
        reason = registry.declaration(source).disabled_reason()
    except KeyError:  # not a registered source (a benchmark's in-process table)
        return
    if reason:
        raise SourcePermanentError(f"off: {reason}")


def crm_sync(tables: Tables, overlap_s: float = DEFAULT_OVERLAP_S):
    """The SyncEntry of a CRM source whose objects are `tables` (or a function of the run
    answering them, for tables that depend on the connection)."""

    def sync(run: SourceRun) -> SyncOutcome:
        source = run.resource.ENV_PREFIX.lower()  # the source's name (declaration.py)
        _refuse_if_off(source)
        warehouse = getattr(run.context.resources, RESOURCE_KEY)
        page_size = _option(run, "page_size") or warehouse.page_size
        batch_size = _option(run, "batch_size") or warehouse.batch_size
        bounds = run.window.bounds(run.mark, overlap_s)
        crm = CrmRun(run, bounds.lower, bounds.upper, bounds.now, page_size, not bounds.incremental)
        stats = getattr(run.client, "stats", None) or CallStats()
        if bounds.empty:
            return SyncOutcome([], bounds.upper, stats, {"mode": bounds.mode})
        chosen = _checked(tables(crm) if callable(tables) else tables, source)
        tee = load(source, crm, chosen, warehouse, batch_size, run.context.run_id)
        metadata: dict[str, float | int | str] = {
            "mode": bounds.mode,
            "pages": sum(tee.pages.values()),
            "records": sum(tee.rows.values()),
            "documents_unchanged": tee.unchanged,
            "loads": tee.loads,
            "load_seconds": round(tee.load_s, 2),
            "load_seconds_after_reading": round(tee.tail_s, 2),
            "page_size": page_size,
            "batch_size": batch_size,
            "warehouse": warehouse.describe(source),
        }
        for table in chosen:
            metadata[f"rows_{table.name}"] = tee.rows[table.name]
            metadata[f"rows_deleted_{table.name}"] = tee.deleted[table.name]
            metadata[f"pages_{table.name}"] = tee.pages[table.name]
            # The row key besides _connection_id, as dlt names the columns (for readers).
            metadata[f"key_{table.name}"] = ",".join(column_name(k) for k in table.primary_key)
        return SyncOutcome(tee.documents, bounds.upper, stats, metadata, tombstones=tee.tombstones)

    sync.crm_tables = tables  # for the contract checks and the docs
    return sync
