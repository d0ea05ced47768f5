"""Where CRM tables land: the `warehouse` resource every CRM source's runs get.

By default each source has its own DuckDB file under `$SYNC_DATA_DIR/warehouse/` (a DuckDB
file takes one writer at a time, so two CRM sources never wait on each other); a
`postgresql://` URL (SYNC_WAREHOUSE_URL) loads into PostgreSQL, one schema per source. Either
way the dataset (schema) is the source's name: `<source>.contacts`. The read helpers (`rows`,
`query`) serve tests, the CLI and the contract checks.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.resources import default_data_dir
from sync_pipelines.warehouse.tables import DEFAULT_BATCH_SIZE, DEFAULT_PAGE_SIZE

URL_ENV = "SYNC_WAREHOUSE_URL"
PAGE_SIZE_ENV = "SYNC_CRM_PAGE_SIZE"
BATCH_SIZE_ENV = "SYNC_CRM_BATCH_SIZE"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {text!r}")
    return value


def ident(name: str) -> str:
    """A table, column or schema name safe to put in SQL (the loader's names are all such)."""
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL name")
    return name


class WarehouseResource(ConfigurableResource):
    """The destination of CRM tables and the loader's batch settings."""

    url: str | None = Field(
        default_factory=lambda: os.environ.get(URL_ENV) or None,
        description="postgresql://user:pass@host/db to load into PostgreSQL (one schema per "
        "source); unset: a DuckDB file per source under `data_dir`/warehouse.",
    )
    data_dir: str | None = Field(
        default=None,
        description="Folder of the DuckDB files and dlt's working folders; "
        "unset: $SYNC_DATA_DIR (see resources.default_data_dir).",
    )
    page_size: int = Field(
        default_factory=lambda: _env_int(PAGE_SIZE_ENV, DEFAULT_PAGE_SIZE),
        description="Records per API page for connections without their own page_size.",
    )
    batch_size: int = Field(
        default_factory=lambda: _env_int(BATCH_SIZE_ENV, DEFAULT_BATCH_SIZE),
        description="Records dlt buffers before writing a file (the bulk insert batch); a "
        "load starts once this many are read and takes at most 3 batches.",
    )

    duckdb_memory_limit: str = Field(
        default="256MB",
        description="DuckDB's memory cap while it merges a load (it spills to disk beyond).",
    )

    # --- where -----------------------------------------------------------------------------

    @property
    def is_postgres(self) -> bool:
        return bool(self.url) and self.url.split(":", 1)[0].startswith("postgres")

    def root(self) -> Path:
        return Path(self.data_dir or default_data_dir())

    def duckdb_path(self, source: str) -> Path:
        """One file per source; its name differs from the dataset's (DuckDB 2 refuses a
        catalog and a schema of the same name)."""
        return self.root() / "warehouse" / f"{ident(source)}_warehouse.duckdb"

    def pipelines_dir(self, run_id: str) -> Path:
        return self.root() / "dlt" / run_id

    def destination(self, source: str) -> Any:
        """The dlt destination of a source's tables."""
        import dlt

        if self.url and not self.is_postgres:
            raise ValueError(f"{URL_ENV} must be a postgresql:// URL (or unset for DuckDB)")
        if self.is_postgres:
            from dlt.destinations.impl.postgres.configuration import PostgresCredentials

            credentials = PostgresCredentials(self._pg_url())
            if credentials.password is None:  # trust or peer auth: dlt insists on a value
                credentials.password = ""
            return dlt.destinations.postgres(credentials=credentials)
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        path = self.duckdb_path(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        # DuckDB's own buffers grow with a big merge unless capped (it spills to disk).
        limits = {"memory_limit": self.duckdb_memory_limit, "preserve_insertion_order": False}
        return dlt.destinations.duckdb(
            credentials=DuckDbCredentials(str(path), global_config=limits)
        )

    def file_format(self) -> str:
        """The files dlt loads: Parquet into DuckDB (read by DuckDB itself), CSV into
        PostgreSQL (COPY): both stream from disk, unlike INSERT statements."""
        return "csv" if self.is_postgres else "parquet"

    def describe(self, source: str) -> str:
        """The destination for metadata and logs, without credentials."""
        if self.is_postgres:
            from sqlalchemy.engine import make_url

            url = make_url(self._pg_url())
            return f"postgres://{url.host}:{url.port or 5432}/{url.database} schema {source}"
        return f"duckdb {self.duckdb_path(source)} schema {source}"

    def _pg_url(self) -> str:
        scheme, rest = self.url.split("://", 1)
        return "postgresql://" + rest if "+" in scheme or scheme == "postgres" else self.url

    @contextmanager
    def writer(self, source: str) -> Iterator[None]:
        """Held while a run loads a source's DuckDB file, so two runs of one source take
        turns instead of failing on DuckDB's file lock (PostgreSQL needs none)."""
        if self.is_postgres:
            yield
            return
        lock = self.duckdb_path(source).with_suffix(".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- reading ---------------------------------------------------------------------------

    def query(self, source: str, sql: str, params: tuple = ()) -> list[dict]:
        """Rows of `sql` run in the source's database (name tables `<source>.<table>`).
        Parameters are `%s` on both destinations."""
        if self.is_postgres:
            import psycopg2
            import psycopg2.extras

            conn = psycopg2.connect(self._pg_url())
            try:
                with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, params)
                    return [dict(r) for r in cur.fetchall()] if cur.description else []
            finally:
                conn.close()
        import duckdb

        path = self.duckdb_path(source)
        if not path.exists():
            return []
        with self.writer(source), duckdb.connect(str(path), read_only=True) as conn:
            cursor = conn.execute(sql.replace("%s", "?"), list(params))
            names = [d[0] for d in cursor.description] if cursor.description else []
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def tables(self, source: str) -> list[str]:
        """The source's loaded tables (dlt's own `_dlt_*` tables left out)."""
        rows = self.query(
            source,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (source,),
        )
        return sorted(r["table_name"] for r in rows if not r["table_name"].startswith("_dlt"))

    def rows(self, source: str, table: str, connection: str | None = None) -> list[dict]:
        """Every row of `<source>.<table>` (one connection's, if given), in key order of
        dlt's row id; empty when the table does not exist yet."""
        if table not in self.tables(source):
            return []
        sql = f"SELECT * FROM {ident(source)}.{ident(table)}"
        params: tuple = ()
        if connection is not None:
            sql += " WHERE _connection_id = %s"
            params = (connection,)
        return self.query(source, sql + " ORDER BY _dlt_id", params)
