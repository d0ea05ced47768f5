"""Answers already paid for, by (text hash, model, prompt version), in SQLite under the data dir.

The key is the text actually sent (a whole transcript, or one part of a long one), so an
unchanged transcript never costs a second call, in this run or any later one, and a long
transcript edited near its end costs only the parts that changed. Only parsed, schema-valid
answers are stored: a refusal or a malformed answer is asked again next time.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

from sync_pipelines import clock
from sync_pipelines.insights.schema import Extraction


def cache_key(text: str, model: str, prompt_version: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{digest}:{model}:{prompt_version}"


class InsightCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers "
                "(key TEXT PRIMARY KEY, extraction TEXT NOT NULL, stored_at REAL)"
            )

    def get(self, key: str) -> Extraction | None:
        with self._lock:
            row = self._db.execute(
                "SELECT extraction FROM answers WHERE key = ?", (key,)
            ).fetchone()
        return Extraction.from_json(row[0]) if row else None

    def put(self, key: str, extraction: Extraction) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?)",
                (key, extraction.to_json(), clock.now_epoch()),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        self._db.close()
