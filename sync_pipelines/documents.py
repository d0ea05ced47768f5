"""The normalized document every source produces, and the files that carry them to vector_index."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

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
    def from_row(cls, row: dict) -> "Document":
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


def documents_frame(docs: Iterable[Document]) -> pd.DataFrame:
    """Documents as a DataFrame, one row per doc_id (the last version of a doc wins)."""
    rows = {d.doc_id: d.to_row() for d in docs}
    return pd.DataFrame(list(rows.values()), columns=DOCUMENT_COLUMNS)


class DocumentFiles:
    """Parquet files of documents, one per source run, under `root/source/connection/`.

    A source asset writes its documents here before it reports its materialization; the
    materialization's metadata carries the file path, so the event log is the queue that
    vector_index reads from. Files are written to a temporary name and renamed, so a killed
    run never leaves a half-written file behind.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def write(self, source: str, connection: str, run_id: str, docs: Sequence[Document]) -> Path:
        folder = self.root / source / connection
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run_id}.parquet"
        tmp = folder / f".{run_id}.{uuid.uuid4().hex}.tmp"
        documents_frame(docs).to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    @staticmethod
    def read(path: str | os.PathLike) -> list[Document]:
        frame = pd.read_parquet(path)
        return [Document.from_row(r) for r in frame.to_dict("records")]
