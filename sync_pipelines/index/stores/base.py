"""What every vector store offers the index: records in, filtered matches out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from sync_pipelines.documents import ACCESS_ALL
from sync_pipelines.errors import PermanentError

T = TypeVar("T")
# Told the records of each upsert request the store accepted, e.g. to record them in the ledger.
RequestDone = Callable[[Sequence["VectorRecord"]], None]
# Told the ids of each metadata update request the store accepted.
IdsDone = Callable[[Sequence[str]], None]


class StoreError(RuntimeError):
    """A vector store refused or failed a request."""


class KeywordSearchUnavailable(StoreError, PermanentError):
    """The store holds no searchable text (Pinecone here): only vector search is possible."""

    def __init__(self, store: str):
        super().__init__(
            f"store {store} has no keyword (full-text) index: search it with mode='vector', "
            "or use the LanceDB store for keyword and hybrid search"
        )


class StoreDimensionError(StoreError, PermanentError):
    """The store's vectors and the embedder's vectors differ in size: no retry can fix it."""

    def __init__(self, store: str, store_dim: int, embedder_dim: int):
        super().__init__(
            f"store {store} has dimension {store_dim} but embedder produces {embedder_dim}: "
            "use a new index/table (or the matching embedder) rather than mixing vector sizes"
        )


@dataclass(frozen=True)
class VectorRecord:
    id: str
    values: np.ndarray | list[float]
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    id: str
    score: float  # cosine similarity: higher is closer
    metadata: dict


@dataclass(frozen=True)
class SearchFilter:
    """Who is asking and where to look. `access` always contains "all", lower-cased."""

    access: list[str]
    source: str | None = None

    def __post_init__(self):
        identities = {a.strip().lower() for a in self.access if a.strip()} | {ACCESS_ALL}
        object.__setattr__(self, "access", sorted(identities))

    def allows(self, metadata: dict) -> bool:
        """Whether a match with this metadata may be shown to the caller."""
        access = metadata.get("access")
        readers = [access] if isinstance(access, str) else list(access or [])
        if not set(readers) & set(self.access):
            return False
        return self.source is None or metadata.get("source") == self.source


class VectorStore(Protocol):
    name: str  # stable key of store + index + namespace: the ledger's partition
    supports_keyword: bool  # whether keyword_query works (a full-text index over chunk text)

    def ensure_dimension(self, dim: int) -> None:
        """Create the table/check the index; StoreDimensionError if sizes differ."""

    def upsert(self, records: Sequence[VectorRecord], on_request: RequestDone | None = None) -> int:
        """Insert or overwrite by id; returns the number of requests made.

        `on_request` gets each request's records as soon as the store accepted them, so a
        caller can record them before the next request: a kill then loses at most one.
        """

    def update_metadata(
        self, items: Sequence[tuple[str, dict]], on_request: IdsDone | None = None
    ) -> int:
        """Replace the stored metadata of existing vectors in place, keeping their values.

        `items` are (vector id, the chunk's complete new metadata as VectorRecord metadata);
        the last item of an id wins. Keys absent from the new metadata are gone afterwards.
        Returns the number of store requests (reads included); `on_request(ids)` is told the
        ids of each request once the store accepted it, ids found already up to date
        included, so the caller can record them as it does for upserts. Ids the store does
        not hold are skipped, never created, and never reported.
        """

    def delete(self, ids: Sequence[str]) -> int:
        """Remove by id (missing ids are fine); returns the number of requests made."""

    def query(self, vector, top_k: int, filter: SearchFilter) -> list[Match]:
        """The top_k closest records the filter allows, best first."""

    def keyword_query(self, text: str, top_k: int, filter: SearchFilter) -> list[Match]:
        """The top_k records whose text best matches `text` by BM25 (score: higher is
        better), best first, that the filter allows; KeywordSearchUnavailable where the
        store keeps no searchable text."""

    def count(self) -> int: ...

    def ids(self) -> set[str]:
        """Every id in the store, for reconciliation and tests."""

    def fetch_metadata(self, ids: Sequence[str]) -> dict[str, dict]: ...

    def compact(self) -> None:
        """Tidy up after a run's many small writes and bring search indexes up to date
        (a no-op where the service does it)."""


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
