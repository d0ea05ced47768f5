"""The insights table: one row per insight of every call, in one Parquet file under the data dir.

Each call's rows are replaced as a whole when its transcript is extracted again and removed
when it is deleted upstream, so the table always holds the latest extraction of each call that
still exists. Every extracted call has a `sentiment` row, so the table also knows which calls
it holds. Writes go to a temporary file renamed over the old one: a killed run leaves the old
table or the new one, never half of one.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines import clock
from sync_pipelines.resources import default_data_dir

TABLE_FILE = "call_insights.parquet"
COLUMNS = [
    "doc_id",  # the call's (transcript's) doc_id
    "insight_doc_id",
    "source",
    "connection",
    "title",
    "url",
    "call_time",  # epoch seconds: the time the call's source partitions it by
    "call_date",  # ISO 8601, UTC
    "kind",
    "value",
    "quote",
    "owner",
    "sentiment",
    "model",
    "prompt_version",
    "access",
    "extracted_at",
]


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


class InsightTable:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.path = self.root / TABLE_FILE

    def read(self) -> pd.DataFrame:
        if not self.path.exists():
            return empty_frame()
        frame = pd.read_parquet(self.path)
        frame["access"] = frame["access"].map(lambda a: list(a) if a is not None else [])
        return frame[COLUMNS]

    def update(self, rows: Iterable[dict], replaced: Iterable[str]) -> pd.DataFrame:
        """Drop every row of the calls `replaced` (re-extracted or deleted), add `rows`."""
        gone = set(replaced)
        current = self.read()
        kept = current[~current["doc_id"].isin(gone)]
        added = pd.DataFrame(list(rows), columns=COLUMNS)
        frame = pd.concat([f for f in (kept, added) if not f.empty] or [empty_frame()])
        frame = frame.reset_index(drop=True)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{TABLE_FILE}.{uuid.uuid4().hex}.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.path)
        return frame

    def calls_in(self, scope: str, start: float, end: float) -> set[str]:
        """The calls held whose doc_id starts with `scope` and whose time is in [start, end)."""
        frame = self.read()
        inside = (
            frame["doc_id"].str.startswith(scope)
            & (frame["call_time"] >= start)
            & (frame["call_time"] < end)
        )
        return set(frame.loc[inside, "doc_id"])


class InsightsStore(ConfigurableResource):
    """Where call_insights keeps its table and its cache of paid answers."""

    root: str = Field(
        default_factory=lambda: str(Path(default_data_dir()) / "insights"),
        description="Folder of the insights table (Parquet) and the answer cache (SQLite).",
    )

    def table(self) -> InsightTable:
        return InsightTable(self.root)

    def cache_path(self) -> Path:
        return Path(self.root) / "answers_cache.sqlite"


@dataclass(frozen=True)
class Query:
    """A filter over the table: every given criterion must hold (text matches are
    case-insensitive substrings)."""

    kind: str | None = None
    feature: str | None = None
    competitor: str | None = None
    text: str | None = None  # in the value or the quote
    source: str | None = None
    since_epoch: float | None = None


def select(frame: pd.DataFrame, query: Query) -> pd.DataFrame:
    """The rows matching `query`, newest call first."""
    keep = pd.Series(True, index=frame.index)

    def contains(column: str, needle: str) -> pd.Series:
        return frame[column].fillna("").str.contains(re.escape(needle), case=False, regex=True)

    if query.kind:
        keep &= frame["kind"] == query.kind
    if query.feature:
        keep &= (frame["kind"] == "feature") & contains("value", query.feature)
    if query.competitor:
        keep &= (frame["kind"] == "competitor") & contains("value", query.competitor)
    if query.text:
        keep &= contains("value", query.text) | contains("quote", query.text)
    if query.source:
        keep &= frame["source"] == query.source
    if query.since_epoch is not None:
        keep &= frame["call_time"] >= query.since_epoch
    return frame[keep].sort_values(["call_time", "doc_id"], ascending=[False, True])


_SINCE = re.compile(r"^(\d+)([hdw])$")


def since_epoch(text: str) -> float:
    """`30d`, `12h`, `2w` before now, or a UTC date `YYYY-MM-DD`, as epoch seconds."""
    match = _SINCE.match(text.strip().lower())
    if match:
        hours = {"h": 1, "d": 24, "w": 24 * 7}[match.group(2)] * int(match.group(1))
        return clock.now_epoch() - hours * 3600
    try:
        moment = pd.Timestamp(text.strip(), tz="UTC")
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration like 30d, 12h or 2w, or a date YYYY-MM-DD"
        ) from None
    return moment.timestamp()
