"""The sandbox's Genius database: its own MariaDB database and read-only user, per Sandbox.

Each state owns `genius_sbx_<random>` (database and user of that name, SELECT only, password
SANDBOX_GENIUS_PASSWORD) on the machine's MariaDB (SANDBOX_MARIADB_HOST/PORT/USER, default
root@127.0.0.1:3306). It is created and seeded from the CRM world on first use (the first
client connection through the proxy, or a test's edit), so sandboxes that never talk to Genius
cost nothing, and dropped when the sandbox stops. No other database is ever touched.

`edit`/`delete` change the world (the ground truth) and the row together, as the
application's UI would: the row's `updated_at` becomes now.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterable
from typing import Any

import pymysql

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.genius.data import DDL, KIND_OF, TABLES, Rows

SANDBOX_GENIUS_PASSWORD = "genius-sandbox-read-only"
PREFIX = "genius_sbx_"
SEED_BATCH = 2000


def mariadb_address() -> tuple[str, int, str]:
    return (
        os.environ.get("SANDBOX_MARIADB_HOST", "127.0.0.1"),
        int(os.environ.get("SANDBOX_MARIADB_PORT", "3306")),
        os.environ.get("SANDBOX_MARIADB_USER", "root"),
    )


class GeniusDatabase:
    """One sandbox's database. `name` is also the read-only user's name."""

    def __init__(self, company: Company, timezone: str = "UTC"):
        self.company = company
        self.timezone = timezone
        self.name = PREFIX + secrets.token_hex(5)
        self.host, self.port, self.admin = mariadb_address()
        self._lock = threading.Lock()
        self._seeded = False
        self._dropped = False

    @property
    def world(self) -> CrmWorld:
        return CrmWorld.of(self.company)

    @property
    def rows(self) -> Rows:
        return Rows(self.world, self.timezone)

    def admin_connection(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host=self.host, port=self.port, user=self.admin, database=database, autocommit=True
        )

    # ----------------------------------------------------------------- life cycle
    def ensure_seeded(self) -> None:
        """Create, grant and seed the database once (thread-safe); later calls return at once."""
        with self._lock:
            if self._seeded:
                return
            if self._dropped:
                raise RuntimeError(f"sandbox database {self.name} was dropped")
            conn = self.admin_connection()
            try:
                cur = conn.cursor()
                cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
                cur.execute(f"USE `{self.name}`")
                for statement in DDL:
                    cur.execute(statement)
                rows = self.rows
                for table in TABLES:
                    self._insert(cur, table, rows.all(table))
                cur.execute(
                    f"CREATE USER IF NOT EXISTS '{self.name}'@'%%' IDENTIFIED BY %s",
                    (SANDBOX_GENIUS_PASSWORD,),
                )
                cur.execute(f"GRANT SELECT ON `{self.name}`.* TO '{self.name}'@'%'")
            finally:
                conn.close()
            self._seeded = True

    @staticmethod
    def _insert(cur: Any, table: str, rows: Iterable[dict]) -> None:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= SEED_BATCH:
                _insert_batch(cur, table, batch)
                batch = []
        if batch:
            _insert_batch(cur, table, batch)

    def drop(self) -> None:
        """Drop the database and its user (only if this state created them)."""
        with self._lock:
            self._dropped = True
            if not self._seeded:
                return
            self._seeded = False
            conn = self.admin_connection()
            try:
                cur = conn.cursor()
                cur.execute(f"DROP USER IF EXISTS '{self.name}'@'%'")
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            finally:
                conn.close()

    # ----------------------------------------------------------------- the application's edits
    def execute(self, sql: str, args: Any = None) -> int:
        """Run one statement as the application (admin) would; answers the affected rows."""
        self.ensure_seeded()
        conn = self.admin_connection(self.name)
        try:
            return conn.cursor().execute(sql, args)
        finally:
            conn.close()

    def query(self, sql: str, args: Any = None) -> list[tuple]:
        self.ensure_seeded()
        conn = self.admin_connection(self.name)
        try:
            cur = conn.cursor()
            cur.execute(sql, args)
            return list(cur.fetchall())
        finally:
            conn.close()

    def _rewrite(self, table: str, i: int) -> dict:
        row = self.rows.row(table, i)
        columns = [c for c in row if c != "id"]
        assignments = ", ".join(f"`{c}` = %s" for c in columns)
        self.execute(
            f"UPDATE `{table}` SET {assignments} WHERE id = %s",
            [row[c] for c in columns] + [row["id"]],
        )
        return row

    def edit(self, table: str, i: int, **fields: Any) -> dict:
        """Edit world record i of `table`'s kind (world field names) and its row; answers the row."""
        self.ensure_seeded()
        self.world.edit(KIND_OF[table], i, **fields)
        return self._rewrite(table, i)

    def delete(self, table: str, i: int) -> dict:
        """Soft-delete row i as the application does (deleted_at / is_deleted, updated now)."""
        self.ensure_seeded()
        self.world.delete(KIND_OF[table], i)
        return self._rewrite(table, i)

    def remove_payment(self, payment_id: int) -> None:
        """Payments have no deletion column: the application deletes the row."""
        self.execute("DELETE FROM payments WHERE id = %s", (payment_id,))


def _insert_batch(cur: Any, table: str, batch: list[dict]) -> None:
    columns = list(batch[0])
    names = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    cur.executemany(
        f"INSERT INTO `{table}` ({names}) VALUES ({marks})",
        [[r[c] for c in columns] for r in batch],
    )
