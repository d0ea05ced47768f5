"""Per-source figures of the last N runs, read back from Dagster's run storage.

Replaces the old `sync_metrics` table: every source and vector_index run records its figures
as materialization metadata, and `sync-pipelines metrics` tabulates them. A source run records
per-day figures on each partition and its own totals as `run_<name>` (sources/figures.py);
the table shows the run's totals under the plain name.
"""

from __future__ import annotations

import resource
from datetime import datetime, timezone
from typing import Sequence

import pandas as pd
from dagster import AssetKey, DagsterInstance

RUN_PREFIX = "run_"
COLUMNS = [
    "documents_written",
    "messages_fetched",
    "api_calls",
    "rate_limited_429",
    "retries",
    "duration_s",
    "peak_memory_mb",
    "chunks_seen",
    "chunks_embedded",
    "chunks_skipped_unchanged",
    "chunks_deleted",
    "tokens_embedded",
]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Dagster runs each run in its own process)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def metrics_table(
    instance: DagsterInstance, assets: Sequence[str], last: int = 10
) -> pd.DataFrame:
    """One row per materialization event (a range run gives one row per run), newest first."""
    rows = []
    for name in assets:
        seen_runs: set[str] = set()
        records = instance.fetch_materializations(AssetKey(name), limit=last * 40).records
        for record in records:
            if record.run_id in seen_runs:
                continue  # a range run materializes many partitions with the same run_ figures
            seen_runs.add(record.run_id)
            meta = record.asset_materialization.metadata
            row = {
                "asset": name,
                "run_id": record.run_id[:8],
                "finished": datetime.fromtimestamp(record.timestamp, tz=timezone.utc).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                "partition": record.partition_key or "",
            }
            for column in COLUMNS:
                entry = meta.get(RUN_PREFIX + column, meta.get(column))
                if entry is not None:
                    row[column] = entry.value
            rows.append(row)
            if len(seen_runs) >= last:
                break
    frame = pd.DataFrame(rows)
    return frame.sort_values("finished", ascending=False) if not frame.empty else frame
