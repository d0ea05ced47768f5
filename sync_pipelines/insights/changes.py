"""What a call_insights run has to do, from the transcript sources' document files: the latest
version of each changed call, the calls deleted upstream (by tombstone, or absent from a
complete listing), and, after extraction, the table rows, documents and tombstones to write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sync_pipelines.documents import Document, DocumentFiles, Listing, Tombstone
from sync_pipelines.index.asset import partition_times
from sync_pipelines.insights import records
from sync_pipelines.insights.extract import Outcome
from sync_pipelines.insights.schema import PROMPT_VERSION
from sync_pipelines.insights.table import InsightTable

# A listing that would delete more than this share of the calls held in its range (and at
# least MIN_REFUSED of them) is refused, as vector_index refuses it by default.
MAX_ABSENT_SHARE = 0.5
MIN_REFUSED = 20


@dataclass
class Written:
    rows: int = 0
    documents: int = 0
    table_rows: int = 0
    files: list[str] = field(default_factory=list)
    retry: dict[str, str] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)


@dataclass
class Changes:
    documents: list[Document] = field(default_factory=list)
    deleted: dict[str, str] = field(default_factory=dict)  # call doc_id -> reason
    origin: dict[str, str] = field(default_factory=dict)  # call doc_id -> its file

    def apply(
        self,
        outcomes: Mapping[str, Outcome],
        table: InsightTable,
        files: DocumentFiles,
        run_id: str,
        model: str,
        now: float,
    ) -> Written:
        """Write the table and the run's insights document files; what was written."""
        written = Written()
        placed = partition_times()
        rows: list[dict] = []
        replaced: set[str] = set()
        out: dict[str, tuple[list[Document], list[Tombstone]]] = defaultdict(lambda: ([], []))
        for call in self.documents:
            outcome = outcomes.get(call.doc_id) or Outcome(error="not extracted")
            if outcome.extraction is None:
                if outcome.refusal is not None:
                    written.refusals[call.doc_id] = outcome.refusal
                else:
                    written.retry[call.doc_id] = self.origin[call.doc_id]
                continue
            extraction = outcome.extraction
            rows += records.rows(call, placed(call), extraction, model, PROMPT_VERSION, now)
            replaced.add(call.doc_id)
            entry = records.document(call, extraction, model, PROMPT_VERSION)
            docs, tombs = out[call.connection]
            if isinstance(entry, Document):
                docs.append(entry)
                written.documents += 1
            else:
                tombs.append(entry)
        for doc_id, reason in self.deleted.items():
            replaced.add(doc_id)
            tomb = Tombstone(records.insight_doc_id(doc_id), reason, now)
            out[records.connection_of(doc_id)][1].append(tomb)
        if rows or replaced:
            written.table_rows = len(table.update(rows, replaced))
        else:
            written.table_rows = len(table.read())
        written.rows = len(rows)
        for connection, (docs, tombs) in sorted(out.items()):
            path = files.write(records.SOURCE, connection, run_id, docs, tombs)
            written.files.append(str(path))
        return written


def collect(
    paths: Sequence[str],
    retry: Mapping[str, str],
    table: InsightTable,
    warn: Callable[[str], None],
) -> Changes:
    """The calls to extract and to delete: the transcripts to retry first (from their files),
    then every entry of the new files in order, the last word on each call winning."""
    latest: dict[str, tuple[Document | None, str, str]] = {}  # id -> (doc or None, file, why)
    wanted: dict[str, set[str]] = defaultdict(set)
    for doc_id, path in retry.items():
        wanted[path].add(doc_id)
    for path, ids in wanted.items():
        if not Path(path).exists():
            warn(f"{len(ids)} transcript(s) to retry are lost with their file {path}")
            continue
        for entry in DocumentFiles.read_entries(path):
            if isinstance(entry, Document) and entry.doc_id in ids:
                latest[entry.doc_id] = (entry, path, "")
    held = table.read()[["doc_id", "call_time"]].drop_duplicates("doc_id")
    for path in paths:
        for entry in DocumentFiles.read_entries(path):
            if isinstance(entry, Document):
                latest[entry.doc_id] = (entry, path, "")
            elif isinstance(entry, Tombstone):
                latest[entry.doc_id] = (None, path, entry.reason)
            else:
                for doc_id in _absent(entry, held, latest, warn):
                    latest[doc_id] = (None, path, entry.reason)
    changes = Changes()
    for doc_id, (doc, path, reason) in latest.items():
        changes.origin[doc_id] = path
        if doc is None:
            changes.deleted[doc_id] = reason or "deleted upstream"
        else:
            changes.documents.append(doc)
    return changes


def _absent(listing: Listing, held: pd.DataFrame, latest: Mapping, warn) -> list[str]:
    """The calls the table holds in the listing's scope and range that it does not list
    (and this run did not see again)."""
    inside = (
        held["doc_id"].str.startswith(listing.scope)
        & (held["call_time"] >= listing.start)
        & (held["call_time"] < listing.judged_until)
    )
    in_range = list(held.loc[inside, "doc_id"])
    absent = [
        d
        for d in in_range
        if d not in listing.doc_ids and not (d in latest and latest[d][0] is not None)
    ]
    if len(absent) >= MIN_REFUSED and len(absent) > MAX_ABSENT_SHARE * len(in_range):
        warn(
            f"listing of {listing.scope} would delete {len(absent)} of {len(in_range)} calls' "
            "insights: refused (a partial listing?)"
        )
        return []
    return absent
