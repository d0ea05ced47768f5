"""Look for secrets everywhere a deployment writes: DAGSTER_HOME, the data dir, PostgreSQL,
posted alerts.

Why two readings: SQLite pages and compute logs keep text as written, so raw bytes find a
secret in them (tables, indexes and freed pages alike); Parquet compresses, so its rows are
decoded first; PostgreSQL is read row by row, bytea columns as the hex they print as. A scan
also looks for harmless *control* strings known to be in each store, so a scan that read
nothing cannot pass as a clean one.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

SQLITE_MAGIC = b"SQLite format 3\x00"


def canaries() -> dict[str, str]:
    """Distinctive fake secrets: any of them found anywhere is a leak, whatever the context."""
    tag = uuid.uuid4().hex
    return {
        "slack token": f"xoxb-canary-good-{tag}",
        "revoked slack token": f"xoxb-canary-revoked-{tag}",
        "slack token pasted in the registry": f"xoxb-canary-inline-{tag}",
        "openai key": f"sk-canary-good-{tag}",
        "bad openai key": f"sk-canary-bad-{tag}",
        "pinecone key": f"pcsk_canary_good_{tag}",
        "bad pinecone key": f"pcsk_canary_bad_{tag}",
    }


@dataclass
class ScanResult:
    """Files (or tables) read by kind, and (kind, where, label) of every needle found."""

    read: Counter = field(default_factory=Counter)
    hits: list[tuple[str, str, str]] = field(default_factory=list)

    def found(self, label: str, kind: str | None = None) -> int:
        return sum(1 for k, _, name in self.hits if name == label and kind in (None, k))

    def merge(self, other: ScanResult) -> ScanResult:
        return ScanResult(self.read + other.read, self.hits + other.hits)


def kind_of(path: Path) -> str:
    if path.suffix == ".parquet":
        return "parquet"
    if "compute_logs" in path.parts or path.suffix in (".out", ".err", ".complete"):
        return "compute_log"
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC or path.name.endswith(("-wal", "-journal", "-shm")):
        return "sqlite"
    return "other"


def _text_of(path: Path, kind: str) -> bytes:
    if kind == "parquet":
        return repr(pq.read_table(path).to_pylist()).encode("utf-8", "backslashreplace")
    return path.read_bytes()


def scan_files(roots: Iterable[Path], needles: Mapping[str, str]) -> ScanResult:
    """Every file under `roots`; `needles` maps a label (what reports show) to the string."""
    result = ScanResult()
    encoded = {label: value.encode() for label, value in needles.items()}
    for root in roots:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            kind = kind_of(path)
            result.read[kind] += 1
            data = _text_of(path, kind)
            for label, value in encoded.items():
                if value in data:
                    result.hits.append((kind, str(path), label))
    return result


def scan_texts(kind: str, texts: Mapping[str, str], needles: Mapping[str, str]) -> ScanResult:
    """Strings held in memory (posted alerts, an emulator's records), keyed by where."""
    result = ScanResult()
    for where, text in texts.items():
        result.read[kind] += 1
        result.hits += [(kind, where, label) for label, v in needles.items() if v in text]
    return result


def scan_postgres(dsn: str, needles: Mapping[str, str]) -> ScanResult:
    """Every row of every table of one database, as text (bytea as its hex form too)."""
    import psycopg2

    result = ScanResult()
    forms = {label: (v, v.encode().hex()) for label, v in needles.items()}
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                "AND table_type = 'BASE TABLE'"
            )
            for schema, table in cur.fetchall():
                result.read["postgres_table"] += 1
                cur.execute(f'SELECT t::text FROM "{schema}"."{table}" AS t')
                for (row,) in cur:
                    result.read["postgres_row"] += 1
                    for label, (plain, hexed) in forms.items():
                        if plain in row or hexed in row:
                            result.hits.append(("postgres", f"{schema}.{table}", label))
    finally:
        conn.close()
    return result
