"""Benchmark: peak memory of the CRM loader against the number of records (it must stay flat).

Each size runs in a fresh process (peak RSS is per process): a synthetic contacts table of
N records (CRM-contact sized, 16 fields, nested values included) is streamed page by page
through the shared loader (warehouse/loader.py: dlt, merge on the key, batch_size rows
buffered before a file is written) into a DuckDB file (or PostgreSQL with --postgres URL),
and the process reports its peak RSS, its RSS before the load (imports done) and the time.

    .venv/bin/python bench/crm_memory.py --sizes 10000 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

PAGE_SIZE = 200


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def contacts(n: int):
    """Pages of synthetic contacts, generated as they are read (never all in memory)."""
    base = 1_790_000_000.0

    def pages(run):
        for start in range(0, n, run.page_size):
            yield [
                {
                    "id": str(i),
                    "firstname": f"First{i % 977}",
                    "lastname": f"Last{i % 1013}",
                    "email": f"person{i}@customer{i % 500}.example",
                    "phone": f"+1-555-{i % 10_000_000:07d}",
                    "company": f"Customer {i % 500}",
                    "lifecyclestage": ("lead", "opportunity", "customer")[i % 3],
                    "owner_email": f"owner{i % 17}@acme.example",
                    "city": ("Berlin", "Austin", "Lyon", "Osaka")[i % 4],
                    "industry": ("Retail", "Finance", "Health")[i % 3],
                    "amount": round(i * 1.37 % 250_000, 2),
                    "createdate": base + i,
                    "lastmodifieddate": base + i + 60,
                    "archived": False,
                    "address": {"street": f"{i} Main St", "zip": f"{i % 99999:05d}"},
                    "notes": "Renewal discussion: pricing agreed, legal review pending. " * 2,
                }
                for i in range(start, min(start + run.page_size, n))
            ]

    return pages


def child(n: int, url: str | None, batch_size: int, memory_limit: str) -> dict:
    from sync_pipelines.warehouse.destination import WarehouseResource
    from sync_pipelines.warehouse.loader import load
    from sync_pipelines.warehouse.tables import CrmRun, Table

    with tempfile.TemporaryDirectory() as folder:
        warehouse = WarehouseResource(
            url=url, data_dir=folder, batch_size=batch_size, duckdb_memory_limit=memory_limit
        )
        run = SimpleNamespace(connection=SimpleNamespace(id="bench"), client=None, options=None)
        crm = CrmRun(run, 0.0, 2e9, time.time(), PAGE_SIZE, True)  # type: ignore[arg-type]
        table = Table("contacts", ("id",), contacts(n))
        before = current_mb()
        started = time.monotonic()
        tee = load("crmbench", crm, [table], warehouse, batch_size, f"bench-{n}")
        seconds = time.monotonic() - started
        loaded = warehouse.query("crmbench", "SELECT count(*) AS n FROM crmbench.contacts")
        if url:  # leave the database as we found it
            warehouse.query("crmbench", "DROP SCHEMA crmbench CASCADE")
    return {
        "records": n,
        "rows_loaded": tee.rows["contacts"],
        "rows_in_table": loaded[0]["n"],
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_mb(), 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(n / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--postgres", help="postgresql:// URL of a scratch database")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--duckdb-memory-limit", default="256MB")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        limit = args.duckdb_memory_limit
        print(json.dumps(child(args.child, args.postgres, args.batch_size, limit)))
        return
    print(f"{'records':>9} {'peak RSS MB':>12} {'RSS before':>11} {'seconds':>8} {'rows/s':>8}")
    for n in args.sizes:
        command = [
            sys.executable,
            __file__,
            "--child",
            str(n),
            "--batch-size",
            str(args.batch_size),
            "--duckdb-memory-limit",
            args.duckdb_memory_limit,
        ]
        command += ["--postgres", args.postgres] if args.postgres else []
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        assert row["rows_loaded"] == row["rows_in_table"] == n, row
        print(f"{n:>9} {row['peak_rss_mb']:>12} {row['rss_before_mb']:>11} "
              f"{row['seconds']:>8} {row['rows_per_s']:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
