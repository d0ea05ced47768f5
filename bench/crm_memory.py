"""Benchmark: peak memory of the CRM loader against the number of records (it must stay flat).

Each size runs in a fresh process (peak RSS is per process) and reports its peak RSS, its RSS
before the load (imports done), the time and the documents teed. Two record sources:

- `synthetic` (default): an in-process contacts table of N records (CRM-contact sized, 16
  fields, nested values included), generated page by page as it is read.
- `genius`: the real Genius source's client and Table (sources/genius) reading N rows of
  its `notes` (each a document for the index) or `customers` (no document) table from a
  MariaDB database of the bench's own (created, seeded with N rows server side, dropped);
  the database's memory is MariaDB's, not the measured process's.

Either streams page by page through the shared loader (warehouse/loader.py: dlt, merge on the
key, batches loaded while the next pages are read) into a DuckDB file, or PostgreSQL with
--postgres URL.

    .venv/bin/python bench/crm_memory.py --sizes 10000 200000
    .venv/bin/python bench/crm_memory.py --source genius --table notes --sizes 10000 200000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Self

PAGE_SIZE = 200
GENIUS_PASSWORD_ENV = "BENCH_GENIUS_PASSWORD"


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


# ------------------------------------------------------------------ the Genius database
SEED = {
    "notes": (
        "INSERT INTO notes (id, customer_id, appointment_id, job_id, author_email, body, "
        "created_at, updated_at, is_deleted) SELECT seq, 1 + seq % 500, NULL, NULL, "
        "CONCAT('rep', seq % 17, '@acme.example'), CONCAT('Call with customer ', seq % 500, "
        "': renewal discussion, pricing agreed, legal review pending. ', "
        "REPEAT('Follow-up booked for next week. ', 3)), "
        "TIMESTAMP '2026-11-01 00:00:00' + INTERVAL seq SECOND, "
        "TIMESTAMP '2026-11-01 00:01:00' + INTERVAL seq SECOND, 0 FROM seq_1_to_{n}"
    ),
    "customers": (
        "INSERT INTO customers (id, name, email_domain, industry, city, sales_rep_email, "
        "created_at, updated_at, deleted_at) SELECT seq, CONCAT('Customer ', seq), "
        "CONCAT('customer', seq, '.example'), ELT(1 + seq % 3, 'Retail', 'Finance', 'Health'), "
        "ELT(1 + seq % 4, 'Berlin', 'Austin', 'Lyon', 'Osaka'), "
        "CONCAT('rep', seq % 17, '@acme.example'), "
        "TIMESTAMP '2026-11-01 00:00:00' + INTERVAL seq SECOND, "
        "TIMESTAMP '2026-11-01 00:01:00' + INTERVAL seq SECOND, NULL FROM seq_1_to_{n}"
    ),
}


class GeniusDatabase:
    """A MariaDB database of the bench's own with the Genius schema (the sandbox's DDL) and
    `n` rows in one table, plus a read-only user as the source connects with."""

    def __init__(self, table: str, n: int):
        self.table, self.n = table, n
        self.name = f"crm_mem_{secrets.token_hex(4)}"
        self.password = secrets.token_hex(8)

    def _admin(self):
        import pymysql
        from sync_pipelines_sandbox.genius.db import mariadb_address

        host, port, user = mariadb_address()
        self.host, self.port = host, port
        return pymysql.connect(host=host, port=port, user=user, autocommit=True)

    def __enter__(self) -> Self:
        from sync_pipelines_sandbox.genius.data import DDL

        conn = self._admin()
        try:
            cur = conn.cursor()
            cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{self.name}`")
            for statement in DDL:
                cur.execute(statement)
            cur.execute(SEED[self.table].format(n=self.n))
            cur.execute(f"CREATE USER '{self.name}'@'%%' IDENTIFIED BY %s", (self.password,))
            cur.execute(f"GRANT SELECT ON `{self.name}`.* TO '{self.name}'@'%'")
        finally:
            conn.close()
        return self

    def __exit__(self, *exc) -> None:
        conn = self._admin()
        try:
            conn.cursor().execute(f"DROP USER IF EXISTS '{self.name}'@'%'")
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        finally:
            conn.close()

    def url(self) -> str:
        return f"mysql://{self.name}@{self.host}:{self.port}/{self.name}"


def genius_run(url: str, table: str):
    """The run namespace and Table of the real Genius source reading `table` (unpaced)."""
    from sync_pipelines.connections import Connection
    from sync_pipelines.sources.genius.client import GeniusResource
    from sync_pipelines.sources.genius.options import GeniusOptions
    from sync_pipelines.sources.genius.tables import TABLES

    options = {"url": url}
    connection = Connection(
        id="bench", source="genius", credentials={"password": GENIUS_PASSWORD_ENV}, options=options
    )
    client = GeniusResource(rate_per_s=0, timeout_s=60).client_for(connection)
    run = SimpleNamespace(
        connection=connection, client=client, options=GeniusOptions.model_validate(options)
    )
    (chosen,) = [t for t in TABLES if t.name == table]
    return run, chosen


# ------------------------------------------------------------------ one size, one process
def child(args) -> dict:
    from sync_pipelines.warehouse.destination import WarehouseResource
    from sync_pipelines.warehouse.loader import load
    from sync_pipelines.warehouse.tables import CrmRun, Table

    n = args.child
    with tempfile.TemporaryDirectory() as folder:
        warehouse = WarehouseResource(
            url=args.postgres,
            data_dir=folder,
            batch_size=args.batch_size,
            duckdb_memory_limit=args.duckdb_memory_limit,
        )
        if args.source == "genius":
            run, table = genius_run(args.genius_url, args.table)
        else:
            run = SimpleNamespace(connection=SimpleNamespace(id="bench"), client=None, options=None)
            table = Table(args.table, ("id",), contacts(n))
        crm = CrmRun(run, 0.0, 2e9, time.time(), PAGE_SIZE, True)  # type: ignore[arg-type]
        before = current_mb()
        started = time.monotonic()
        tee = load("crmbench", crm, [table], warehouse, args.batch_size, f"bench-{n}")
        seconds = time.monotonic() - started
        peak = peak_mb()
        if run.client is not None:
            run.client.close()
        sql = f"SELECT count(*) AS n FROM crmbench.{table.name}"
        loaded = warehouse.query("crmbench", sql)
        if args.postgres:  # leave the database as we found it
            warehouse.query("crmbench", "DROP SCHEMA crmbench CASCADE")
    return {
        "records": n,
        "rows_loaded": tee.rows[table.name],
        "rows_in_table": loaded[0]["n"],
        "documents": len(tee.documents),
        "loads": tee.loads,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(n / seconds),
    }


def measure(args, n: int) -> dict:
    command = [sys.executable, __file__, "--child", str(n), "--source", args.source]
    command += ["--table", args.table, "--batch-size", str(args.batch_size)]
    command += ["--duckdb-memory-limit", args.duckdb_memory_limit]
    command += ["--postgres", args.postgres] if args.postgres else []
    if args.source != "genius":
        return _run_child(command)
    with GeniusDatabase(args.table, n) as db:
        env = {**os.environ, GENIUS_PASSWORD_ENV: db.password}
        return _run_child(command + ["--genius-url", db.url()], env)


def _run_child(command: list[str], env: dict | None = None) -> dict:
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--source", choices=("synthetic", "genius"), default="synthetic")
    parser.add_argument("--table", help="genius: notes (documents) or customers; synthetic: "
                        "the table's name", default=None)  # fmt: skip
    parser.add_argument("--postgres", help="postgresql:// URL of a scratch database")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--duckdb-memory-limit", default="256MB")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--genius-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.table = args.table or ("notes" if args.source == "genius" else "contacts")
    if args.source == "genius" and args.table not in SEED:
        parser.error(f"--table for genius: one of {', '.join(SEED)}")
    if args.child:
        print(json.dumps(child(args)))
        return
    where = "PostgreSQL" if args.postgres else "DuckDB"
    print(f"{args.source} {args.table} into {where}, batch size {args.batch_size}")
    print(f"{'records':>9} {'peak RSS MB':>12} {'RSS before':>11} {'seconds':>8} {'rows/s':>8} "
          f"{'loads':>6} {'documents':>10}")  # fmt: skip
    for n in args.sizes:
        row = measure(args, n)
        assert row["rows_loaded"] == row["rows_in_table"] == n, row
        print(f"{n:>9} {row['peak_rss_mb']:>12} {row['rss_before_mb']:>11} "
              f"{row['seconds']:>8} {row['rows_per_s']:>8} {row['loads']:>6} "
              f"{row['documents']:>10}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
