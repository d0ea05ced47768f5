"""How to read Genius's database: the resource, and a client that pages tables by keyset.

SQLAlchemy (+pymysql) on one connection per run, read-only (`SET SESSION TRANSACTION READ
ONLY`, autocommit: every page is its own consistent read), bound parameters only, and keyset
paging so each page is a range scan and no row is skipped or repeated when many rows share one
`updated_at`:

    SELECT * FROM t WHERE updated_at >= :lower AND updated_at < :upper
      AND (updated_at > :t OR (updated_at = :t AND id > :id))
    ORDER BY updated_at, id LIMIT :page_size

Rows stream from the server (`stream_results`: an unbuffered cursor) and a page is at most
`page_size` rows, so memory stays flat in the table's size. Every statement goes through
`call_with_retries` with the verdicts of sql_errors.py; a failed connection is dropped and
the page read again on a new one (keyset pages are idempotent). DATETIME values are read as
wall-clock times of the connection's `timezone` and answered as UTC-aware datetimes.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pymysql.err import MySQLError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.engine import Connection as SqlConnection
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from sync_pipelines.connections import Connection
from sync_pipelines.errors import final_error
from sync_pipelines.resilience import CallStats, RateLimiter, call_with_retries
from sync_pipelines.sources.genius.options import GeniusOptions
from sync_pipelines.sources.genius.schema import TableSpec
from sync_pipelines.sources.genius.sql_errors import translate
from sync_pipelines.sources.resource import SourceResourceBase

MAX_PAGE_SIZE = 10_000
# Genius documents no rate (it is the application's own live database): our budget, to stay
# gentle on it; GENIUS_RATE_PER_S (0 = unpaced) or the resource's rate_per_s change it.
QUERIES_PER_S = 20.0
DRIVERS = ("mysql", "mariadb")


class GeniusResource(SourceResourceBase):
    """How to reach Genius's database; the URL, password and options come from each connection.

    The URL is a SQLAlchemy URL without the password (`mysql+pymysql://user@host:3306/genius`):
    the connection's `url` option, else GENIUS_BASE_URL (or this resource's base_url). A
    database has no documented request rate: pacing (`rate_per_s`, queries per second) is
    our default budget (QUERIES_PER_S), changed by GENIUS_RATE_PER_S or `rate_per_s`."""

    ENV_PREFIX: ClassVar[str] = "GENIUS"
    DEFAULT_BASE_URL: ClassVar[str | None] = None
    BASE_URL_HINT: ClassVar[str] = "mysql+pymysql://genius_reader@db.example.com:3306/genius"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = QUERIES_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = 200
    MAX_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE

    def database_url(self, connection: Connection, options: GeniusOptions) -> URL:
        label = f"genius connection '{connection.id}'"
        raw = options.url or connection.base_url or self.base_url or self._env_url()
        if not raw:
            raise ValueError(
                f"{label} has no database URL: set the connection's `url` option or "
                f"{self.base_url_env()}, e.g. {self.BASE_URL_HINT}"
            )
        try:
            url = make_url(raw)
        except ArgumentError:
            raise ValueError(f"{label}: the database URL is not a SQLAlchemy URL") from None
        if url.get_backend_name() not in DRIVERS:
            raise ValueError(f"{label}: the database URL must be mysql:// or mariadb://")
        if url.password:
            raise ValueError(
                f"{label}: the database URL must not hold the password: name its environment "
                "variable as the connection's `password` credential"
            )
        if url.drivername in DRIVERS:
            url = url.set(drivername=f"{url.drivername}+pymysql")
        return url

    def _env_url(self) -> str | None:
        return os.environ.get(self.base_url_env())

    def client_for(self, connection: Connection) -> GeniusClient:
        options = GeniusOptions.from_connection(connection.options, "genius")
        url = self.database_url(connection, options)
        timeout = max(1, math.ceil(self.checked_timeout()))
        password = connection.secret("password")
        engine = create_engine(
            url.set(password=password),
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=0,
            pool_recycle=3600,
            connect_args={
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "write_timeout": timeout,
                "charset": "utf8mb4",
            },
        )
        event.listen(engine, "connect", _read_only)
        client = GeniusClient(
            engine,
            f"genius connection '{connection.id}'",
            f"{url.host}:{url.port or 3306}/{url.database}",
            ZoneInfo(options.timezone),
            RateLimiter(self.pace()),
            {"max_attempts": self.max_attempts, "max_rate_limit_waits": self.max_rate_limit_waits},
            password,
        )
        try:
            client.connect()  # rejected credentials fail here, before any table is read
        except BaseException:
            client.close()
            raise
        return client


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
    finally:
        cursor.close()


class GeniusClient:
    """One connection's reads. `stats` counts statements (api_calls), retries and 1040s."""

    def __init__(
        self,
        engine: Engine,
        label: str,
        where: str,
        zone: tzinfo,
        limiter: RateLimiter,
        retry: dict[str, int],
        password: str = "",
    ):
        self.engine = engine
        self.label = label
        self.where = where
        self.zone = zone
        self.limiter = limiter
        self.retry = retry
        self.stats = CallStats()
        self._secrets = [password] if password else []
        self._conn: SqlConnection | None = None

    def close(self) -> None:
        self._drop()
        self.engine.dispose()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError, MySQLError, OSError):  # already broken
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    # ----------------------------------------------------------------- statements
    def connect(self) -> None:
        """Open the run's connection (with the retries), so bad credentials fail at once."""
        self._run(None, "SELECT 1", {})

    def _run(self, table: str | None, sql: str, params: dict) -> list[dict]:
        """One statement's rows, streamed from the server, with retries on a new connection."""

        def attempt() -> list[dict]:
            self.stats.add(throttle_wait_s=self.limiter.acquire(), api_calls=1)
            try:
                if self._conn is None:
                    self._conn = self.engine.connect()
                conn = self._conn.execution_options(stream_results=True)
                result = conn.execute(text(sql), params)
                return [dict(row) for row in result.mappings()]
            except (SQLAlchemyError, MySQLError, OSError) as exc:
                self._drop()
                raise translate(exc, self.label, table) from None

        def describe(exc: BaseException, verdict: Any, attempts: int) -> BaseException:
            about = f"reading table '{table}'" if table else "connecting"
            return final_error(
                f"{self.label}: {about} on {self.where}",
                exc,
                verdict,
                attempts,
                self._secrets,
                auth_hint="check the password the registry names",
            )

        return call_with_retries(attempt, stats=self.stats, describe=describe, **self.retry)

    # ----------------------------------------------------------------- paging
    def wall(self, epoch: float) -> datetime:
        """Epoch seconds as the zone-less DATETIME the database stores."""
        return datetime.fromtimestamp(epoch, self.zone).replace(tzinfo=None)

    def record(self, row: dict) -> dict:
        """A row with its DATETIMEs as UTC-aware datetimes (read in the connection's zone)."""
        return {
            k: v.replace(tzinfo=self.zone).astimezone(UTC)
            if isinstance(v, datetime) and v.tzinfo is None
            else v
            for k, v in row.items()
        }

    def pages(
        self, spec: TableSpec, lower: float | None, upper: float | None, page_size: int
    ) -> Iterator[list[dict]]:
        """The table's rows updated in [lower, upper) (all rows of a full-refresh table),
        page by page in keyset order."""
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        table, key, updated = _ident(spec.name), _ident(spec.key), spec.updated
        where: list[str] = []
        params: dict[str, Any] = {"page_size": size}
        if updated is not None:
            updated = _ident(updated)
            if lower is not None:
                where.append(f"`{updated}` >= :lower")
                params["lower"] = self.wall(math.floor(lower))
            if upper is not None:
                where.append(f"`{updated}` < :upper")
                params["upper"] = self.wall(upper)
            order = f"`{updated}`, `{key}`"
            after = f"(`{updated}` > :t OR (`{updated}` = :t AND `{key}` > :after))"
        else:
            order = f"`{key}`"
            after = f"`{key}` > :after"
        last: dict | None = None
        while True:
            clauses = where + ([after] if last is not None else [])
            sql = (
                f"SELECT * FROM `{table}`"
                + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
                + f" ORDER BY {order} LIMIT :page_size"
            )
            if last is not None:
                params["after"] = last[spec.key]
                if updated is not None:
                    params["t"] = last[updated]
            rows = self._run(spec.name, sql, params)
            if rows:
                yield [self.record(r) for r in rows]
            if len(rows) < size:
                return
            last = rows[-1]


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"{name!r} is not a plain SQL name")
    return name
