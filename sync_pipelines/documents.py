"""The normalized document every source produces, the tombstones that retract them, the
listings that prove what still exists, and the files that carry them to vector_index."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ACCESS_ALL = "all"

DOCUMENT_COLUMNS = [
    "doc_id",
    "source",
    "connection",
    "title",
    "text",
    "url",
    "author",
    "created_at",
    "updated_at",
    "timestamp_epoch",
    "access",
    "metadata",
]
# A documents file's rows are documents or tombstones: a tombstone row has `deleted` set, its
# doc_id, reason and time, and no document fields. Files written before tombstones existed
# lack these columns and hold documents only.
TOMBSTONE_COLUMNS = ["deleted", "deleted_reason", "deleted_at"]
# A listing row has `listed_ids` set; its doc_id column holds the listing's scope.
LISTING_COLUMNS = ["listed_ids", "listed_from", "listed_to", "listed_at"]
FILE_COLUMNS = DOCUMENT_COLUMNS + TOMBSTONE_COLUMNS + LISTING_COLUMNS
# Rows decoded at a time when reading a file: a few MB of documents at most.
READ_BATCH_ROWS = 1024


@dataclass(frozen=True)
class Document:
    """One source record, normalized.

    `doc_id` is `source:connection:native_id` so re-syncs of the same record keep their ids.
    `access` is `["all"]` or the emails/groups that may read it. `metadata` holds the
    source-specific fields (a channel id, an issue key, ...): flat str/int/float/bool
    values or lists of str, so every vector store can keep them.
    """

    doc_id: str
    source: str
    connection: str
    title: str
    text: str
    url: str
    author: str
    created_at: str
    updated_at: str
    timestamp_epoch: float
    access: tuple[str, ...] = (ACCESS_ALL,)
    metadata: dict = field(default_factory=dict)

    @staticmethod
    def make_id(source: str, connection: str, native_id: str) -> str:
        return f"{source}:{connection}:{native_id}"

    def to_row(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "source": self.source,
            "connection": self.connection,
            "title": self.title,
            "text": self.text,
            "url": self.url,
            "author": self.author,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "timestamp_epoch": float(self.timestamp_epoch),
            "access": list(self.access),
            "metadata": json.dumps(self.metadata, sort_keys=True, ensure_ascii=False),
        }

    @classmethod
    def from_row(cls, row: dict) -> Document:
        meta = row["metadata"]
        return cls(
            doc_id=row["doc_id"],
            source=row["source"],
            connection=row["connection"],
            title=row["title"],
            text=row["text"],
            url=row["url"],
            author=row["author"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            timestamp_epoch=float(row["timestamp_epoch"]),
            access=tuple(row["access"]),
            metadata=json.loads(meta) if isinstance(meta, str) else dict(meta or {}),
        )


@dataclass(frozen=True)
class Tombstone:
    """A record the source says no longer exists (deleted, trashed, revoked, gone from a
    listing): vector_index removes every vector of `doc_id`. `reason` names the signal;
    `observed_at` (epoch seconds) is when the deletion happened or was seen, which settles a
    clash with a document of the same id in one run (see `settle`)."""

    doc_id: str
    reason: str
    observed_at: float

    def to_row(self) -> dict:
        row = dict.fromkeys(DOCUMENT_COLUMNS)
        row.update(
            doc_id=self.doc_id,
            deleted=True,
            deleted_reason=self.reason,
            deleted_at=float(self.observed_at),
        )
        return row

    @classmethod
    def from_row(cls, row: dict) -> Tombstone:
        return cls(row["doc_id"], row["deleted_reason"], float(row["deleted_at"]))


@dataclass(frozen=True)
class Listing:
    """Proof of what exists: every record of `scope` (a doc_id prefix such as
    '<source>:<connection>:', or narrower) whose partition time lies in [start, end) was
    listed, completely, at `listed_at`, and `doc_ids` are the ones that exist. vector_index
    deletes the documents it holds in that scope whose partition time lies in
    [start, min(end, listed_at)) and that are not listed: absence is the only deletion signal
    some APIs give. A source emits one only after every page of the listing was read without
    error; a listing may over-include (ids outside the range are ignored) but must never miss
    a record that exists."""

    scope: str
    start: float
    end: float
    doc_ids: frozenset[str]
    listed_at: float
    reason: str = "absent from the source's listing"

    def __post_init__(self) -> None:
        if not self.scope or not self.scope.endswith(":"):
            raise ValueError(f"listing scope {self.scope!r} must be a doc_id prefix ending in ':'")
        if not self.start < self.end:
            raise ValueError(f"listing range [{self.start}, {self.end}) is empty")
        object.__setattr__(self, "doc_ids", frozenset(self.doc_ids))

    @classmethod
    def of_connection(
        cls,
        source: str,
        connection_id: str,
        start: float,
        end: float,
        doc_ids: set[str],
        listed_at: float,
        reason: str,
    ) -> Listing:
        """A complete listing of every record of one connection in [start, end)."""
        scope = Document.make_id(source, connection_id, "")
        return cls(scope, start, end, frozenset(doc_ids), listed_at, reason)

    @property
    def doc_id(self) -> str:
        """The key a listing has in a file (its scope): two listings of one scope and range
        in a run are merged by the source, not here."""
        return self.scope

    @property
    def judged_until(self) -> float:
        """The end of what the listing can judge: a record newer than the listing itself
        may simply have been created after it."""
        return min(self.end, self.listed_at)

    def to_row(self) -> dict:
        row = dict.fromkeys(DOCUMENT_COLUMNS)
        row.update(
            doc_id=self.scope,
            deleted=False,
            deleted_reason=self.reason,
            listed_ids=sorted(self.doc_ids),
            listed_from=float(self.start),
            listed_to=float(self.end),
            listed_at=float(self.listed_at),
        )
        return row

    @classmethod
    def from_row(cls, row: dict) -> Listing:
        return cls(
            scope=row["doc_id"],
            start=float(row["listed_from"]),
            end=float(row["listed_to"]),
            doc_ids=frozenset(row["listed_ids"]),
            listed_at=float(row["listed_at"]),
            reason=row["deleted_reason"] or "absent from the source's listing",
        )


Entry = Document | Tombstone | Listing


def settle(
    documents: Iterable[Document], tombstones: Iterable[Tombstone]
) -> tuple[list[Document], list[Tombstone]]:
    """One entry per doc_id for a run's file: the last version of each document, the latest
    tombstone of each id, and where an id has both, the later observation. A document whose
    `timestamp_epoch` is after the tombstone's `observed_at` was restored or re-created after
    the deletion was seen, so it stays; otherwise the deletion wins, ties included: showing
    content someone removed is the worse error, and a restore is itself a change that
    stamps the record with a later time."""
    docs = {d.doc_id: d for d in documents}
    deaths: dict[str, Tombstone] = {}
    for tomb in tombstones:
        seen = deaths.get(tomb.doc_id)
        if seen is None or tomb.observed_at >= seen.observed_at:
            deaths[tomb.doc_id] = tomb
    for doc_id, tomb in list(deaths.items()):
        doc = docs.get(doc_id)
        if doc is None:
            continue
        if doc.timestamp_epoch > tomb.observed_at:
            del deaths[doc_id]
        else:
            del docs[doc_id]
    return list(docs.values()), list(deaths.values())


def file_frame(
    documents: Iterable[Document],
    tombstones: Iterable[Tombstone] = (),
    listings: Iterable[Listing] = (),
) -> pd.DataFrame:
    """A run's documents and tombstones as one frame, one row per doc_id (see `settle`),
    then its listings: applied after the run's own documents, they judge only what the index
    held before."""
    docs, deaths = settle(documents, tombstones)
    alive = {"deleted": False, "deleted_reason": None, "deleted_at": None}
    rows = [{**d.to_row(), **alive} for d in docs]
    rows += [t.to_row() for t in deaths]
    rows += [item.to_row() for item in listings]
    return pd.DataFrame(rows, columns=FILE_COLUMNS)


class DocumentFiles:
    """Parquet files of documents and tombstones, one per source run, under
    `root/source/connection/`.

    A source asset writes its documents here before it reports its materialization; the
    materialization's metadata carries the file path, so the event log is the queue that
    vector_index reads from. Tombstones travel in the same file, so a deletion is queued
    exactly like an edit, in the same order. Files are written to a temporary name and
    renamed, so a killed run never leaves a half-written file behind.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def write(
        self,
        source: str,
        connection: str,
        run_id: str,
        docs: Sequence[Document],
        tombstones: Sequence[Tombstone] = (),
        listings: Sequence[Listing] = (),
    ) -> Path:
        folder = self.root / source / connection
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run_id}.parquet"
        tmp = folder / f".{run_id}.{uuid.uuid4().hex}.tmp"
        file_frame(docs, tombstones, listings).to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    @staticmethod
    def iter_entries(path: str | os.PathLike, batch_rows: int = READ_BATCH_ROWS) -> Iterator[Entry]:
        """The file's documents, tombstones and listings in file order, decoded one record
        batch at a time: memory stays flat however many rows the file holds."""
        with pq.ParquetFile(path) as file:
            names = set(file.schema_arrow.names)
            columns = [c for c in FILE_COLUMNS if c in names]
            for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
                for row in batch.to_pylist():
                    row.setdefault("deleted", False)  # files from before tombstones
                    row.setdefault("listed_ids", None)  # and from before listings
                    yield _entry(row)

    @staticmethod
    def iter_keys(
        path: str | os.PathLike, batch_rows: int = READ_BATCH_ROWS
    ) -> Iterator[tuple[list[str], list[bool]]]:
        """Per record batch, in file order: each row's doc_id (a listing's: its scope) and
        whether it is a listing; the rest of the row is never decoded."""
        with pq.ParquetFile(path) as file:
            listings = "listed_ids" in file.schema_arrow.names
            columns = ["doc_id", "listed_ids"] if listings else ["doc_id"]
            for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
                ids = batch.column("doc_id").to_pylist()
                if listings:
                    is_listing = batch.column("listed_ids").is_valid().to_pylist()
                else:
                    is_listing = [False] * len(ids)
                yield ids, is_listing

    @classmethod
    def read_entries(cls, path: str | os.PathLike) -> list[Entry]:
        """The file's documents, tombstones and listings, in file order."""
        return list(cls.iter_entries(path))

    @classmethod
    def read(cls, path: str | os.PathLike) -> list[Document]:
        """The file's documents (its tombstones left out)."""
        return [e for e in cls.read_entries(path) if isinstance(e, Document)]

    @classmethod
    def read_tombstones(cls, path: str | os.PathLike) -> list[Tombstone]:
        return [e for e in cls.read_entries(path) if isinstance(e, Tombstone)]

    @classmethod
    def read_listings(cls, path: str | os.PathLike) -> list[Listing]:
        return [e for e in cls.read_entries(path) if isinstance(e, Listing)]


def _entry(row: dict) -> Entry:
    if row["deleted"]:
        return Tombstone.from_row(row)
    if row["listed_ids"] is not None:
        return Listing.from_row(row)
    return Document.from_row(row)
