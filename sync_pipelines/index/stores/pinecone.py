"""Pinecone as the vector store, through the `pinecone` SDK's data plane."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pinecone
from pinecone.errors import ResponseParsingError

from sync_pipelines.errors import MalformedResponseError, PermanentError, Verdict, final_error
from sync_pipelines.index.stores.base import (
    IdsDone,
    KeywordSearchUnavailable,
    Match,
    RequestDone,
    SearchFilter,
    StoreDimensionError,
    StoreError,
    VectorRecord,
    batched,
)
from sync_pipelines.resilience import CallStats, call_with_retries

MAX_IDS_PER_REQUEST = 1000  # vectors per upsert, ids per delete
LIST_PAGE_IDS = 100  # the most list returns per page
FETCH_IDS_PER_REQUEST = 100  # fetch sends ids in the URL: keep it short
MAX_METADATA_BYTES = 40 * 1024
# Query limits (docs.pinecone.io/guides/data/query-data, "Query limits"): top_k at most 10,000
# and a result of at most 4 MB, metadata and values included. Up to QUERY_METADATA_TOP_K
# matches fit with metadata whatever its size (40 KB each at most); a larger top_k asks for
# ids and scores only and fetches the metadata in pages.
MAX_TOP_K = 10_000
MAX_RESULT_BYTES = 4_000_000  # "4MB": the decimal reading, the safe one
QUERY_METADATA_TOP_K = int(MAX_RESULT_BYTES * 0.95) // (MAX_METADATA_BYTES + 512)
_SIZE_MARGIN = 0.95  # our size estimate is close to, not exactly, the server's
_VECTOR_OVERHEAD_BYTES = 32  # keys and punctuation around each vector
_MAX_RETRY_AFTER = 60.0
_DEFAULT_NAMESPACE_KEYS = ("", "__default__")  # describe_index_stats names it either way


class PineconePermanentError(StoreError, PermanentError):
    """Pinecone's answer will not change on retry: a 4xx, a malformed body after a few tries."""


class PineconeAuthError(PineconePermanentError):
    """Pinecone rejected the API key: retrying cannot help."""


class PineconeStore:
    """One namespace of a Pinecone index, addressed by its host.

    Upserts go in batches bounded by vector count and by estimated request size (4 bytes per
    value plus metadata and id), several in flight at once. Every call follows the sources'
    policy (`errors.classify`, `resilience.call_with_retries`), on top of the SDK's own short
    retries: jittered exponential backoff on 5xx, timeouts and connection errors, Retry-After
    honoured on 429, a few retries for a body the SDK cannot parse; 401/403 and other 4xx fail
    at once. Errors name the host, the namespace and the operation (never the key).

    Vector search only: the emulator (and the dense indexes we use) offer no sparse vectors,
    and metadata text is not searchable, so there is no keyword search to fuse with.
    """

    supports_keyword = False

    def __init__(
        self,
        api_key: str,
        host: str,
        namespace: str = "",
        max_workers: int = 4,
        max_batch_vectors: int = 1000,
        max_request_bytes: int = 2_000_000,
        timeout: float = 30,
        max_attempts: int = 5,
    ):
        if not api_key:
            raise ValueError("PineconeStore needs an api_key")
        self.host = host.rstrip("/")
        self.namespace = namespace
        self.name = f"pinecone:{self.host.split('://')[-1]}:{namespace}"
        self.max_workers = max_workers
        self.max_batch_vectors = min(max_batch_vectors, MAX_IDS_PER_REQUEST)
        self.max_request_bytes = max_request_bytes
        self.max_attempts = max_attempts
        self.calls = CallStats()  # retries and 429 waits, for run metrics
        self._api_key = api_key
        self._index = pinecone.Pinecone(api_key=api_key, timeout=timeout).Index(host=host)

    def ensure_dimension(self, dim: int) -> None:
        stats = self._call(self._index.describe_index_stats)
        if stats.dimension is None:
            raise StoreError(f"Pinecone index at {self.host} has no dense vectors to hold chunks")
        if stats.dimension != dim:
            raise StoreDimensionError(self.name, stats.dimension, dim)

    def upsert(self, records: Sequence[VectorRecord], on_request: RequestDone | None = None) -> int:
        latest = {r.id: r for r in records}  # one per id: the last one wins
        vectors = [
            {
                "id": r.id,
                "values": np.asarray(r.values, dtype=np.float32).tolist(),
                "metadata": safe_metadata(r.metadata, r.id),
            }
            for r in latest.values()
        ]
        batches = self._size_batches(vectors)

        def send(batch: list[dict]) -> None:
            self._call(self._index.upsert, vectors=batch, namespace=self.namespace)
            if on_request is not None:
                on_request([latest[v["id"]] for v in batch])

        self._parallel(send, batches)
        return len(batches)

    def update_metadata(
        self, items: Sequence[tuple[str, dict]], on_request: IdsDone | None = None
    ) -> int:
        """Read what is stored (one fetch per 100 ids), then write only what differs.

        `update` with `set_metadata` merges into the stored metadata and cannot remove a
        key, and Pinecone answers 200 for an id it does not hold. So: a held id whose new
        metadata keeps every stored key gets one `update` carrying just the changed keys;
        one that lost a key (a source field now empty) is upserted again with its fetched
        values and the new metadata, in size-bounded batches. Ids not held get no request
        and are not reported; ids already current get none and are reported at once.
        A rewrite puts back the values fetched moments before, so it relies on one writer
        per namespace (the updater with its ledger), as the ledger itself does.
        """
        wanted = {vector_id: safe_metadata(metadata, vector_id) for vector_id, metadata in items}
        stored, requests = self._fetch(list(wanted))
        current, patches, rewrites = _plan_updates(wanted, stored)
        if current and on_request is not None:
            on_request(current)

        def patch(item: tuple[str, dict]) -> None:
            vector_id, changed = item
            self._call(
                self._index.update,
                id=vector_id,
                set_metadata=changed,
                namespace=self.namespace,
            )
            if on_request is not None:
                on_request([vector_id])

        def rewrite(batch: list[dict]) -> None:
            self._call(self._index.upsert, vectors=batch, namespace=self.namespace)
            if on_request is not None:
                on_request([v["id"] for v in batch])

        batches = self._size_batches(rewrites)
        self._parallel(patch, patches)
        self._parallel(rewrite, batches)
        return requests + len(patches) + len(batches)

    def delete(self, ids: Sequence[str]) -> int:
        batches = list(batched(sorted(set(ids)), MAX_IDS_PER_REQUEST))
        self._parallel(
            lambda batch: self._call(self._index.delete, ids=list(batch), namespace=self.namespace),
            batches,
        )
        return len(batches)

    def query(self, vector, top_k: int, filter: SearchFilter) -> list[Match]:
        """The closest matches, at most MAX_TOP_K (more than Pinecone can ever return)."""
        top_k = min(top_k, MAX_TOP_K)
        with_metadata = top_k <= QUERY_METADATA_TOP_K
        access = {"access": {"$in": list(filter.access)}}
        expression = access
        if filter.source is not None:
            expression = {"$and": [access, {"source": {"$eq": filter.source}}]}
        response = self._call(
            self._index.query,
            vector=np.asarray(vector, dtype=np.float32).tolist(),
            top_k=top_k,
            namespace=self.namespace,
            filter=expression,
            include_metadata=with_metadata,
        )
        if with_metadata:
            return [Match(m.id, float(m.score), dict(m.metadata or {})) for m in response.matches]
        metadata = self.fetch_metadata([m.id for m in response.matches])
        # An id deleted between the query and the fetch is gone: leave it out.
        return [
            Match(m.id, float(m.score), metadata[m.id])
            for m in response.matches
            if m.id in metadata
        ]

    def keyword_query(self, text: str, top_k: int, filter: SearchFilter) -> list[Match]:
        raise KeywordSearchUnavailable(self.name)

    def count(self) -> int:
        namespaces = self._call(self._index.describe_index_stats).namespaces or {}
        keys = _DEFAULT_NAMESPACE_KEYS if self.namespace == "" else (self.namespace,)
        return next((namespaces[k].vector_count for k in keys if k in namespaces), 0)

    def ids(self) -> set[str]:
        found: set[str] = set()
        token = None
        while True:
            page = self._call(
                self._index.list_paginated,
                namespace=self.namespace,
                limit=LIST_PAGE_IDS,
                pagination_token=token,
            )
            found.update(item.id for item in page.vectors if item.id is not None)
            token = page.pagination.next if page.pagination else None
            if not token:
                return found

    def fetch_metadata(self, ids: Sequence[str]) -> dict[str, dict]:
        found, _ = self._fetch(ids)
        return {vector_id: metadata for vector_id, (_, metadata) in found.items()}

    def compact(self) -> None:
        """Nothing to do: Pinecone compacts server-side."""

    def _fetch(self, ids: Sequence[str]) -> tuple[dict[str, tuple[list[float], dict]], int]:
        """The held ones of these ids as (values, metadata), and the requests it took."""
        batches = list(batched(sorted(set(ids)), FETCH_IDS_PER_REQUEST))
        responses = self._parallel(
            lambda batch: self._call(self._index.fetch, ids=list(batch), namespace=self.namespace),
            batches,
        )
        found = {
            vector_id: (list(vector.values or []), dict(vector.metadata or {}))
            for response in responses
            for vector_id, vector in response.vectors.items()
        }
        return found, len(batches)

    def _size_batches(self, vectors: list[dict]) -> list[list[dict]]:
        """Consecutive batches within both the vector-count and the request-size limit."""
        budget = int(self.max_request_bytes * _SIZE_MARGIN)
        batches, current, used = [], [], 0
        for vector in vectors:
            size = _estimated_bytes(vector)
            if current and (len(current) == self.max_batch_vectors or used + size > budget):
                batches.append(current)
                current, used = [], 0
            current.append(vector)
            used += size
        if current:
            batches.append(current)
        return batches

    def _parallel(self, send: Callable, batches: list) -> list:
        """`send` over the batches, at most max_workers at once; their answers in order."""
        if len(batches) <= 1 or self.max_workers <= 1:
            return [send(batch) for batch in batches]
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(send, batches))  # re-raises the first failure

    @property
    def retries(self) -> int:
        return self.calls.retries

    def _call(self, method: Callable, **kwargs):
        where = f"Pinecone index host {self.host} namespace {self.namespace!r}: {method.__name__}"

        def attempt():
            try:
                return method(**kwargs)
            except ResponseParsingError as exc:  # the SDK keeps neither status nor body
                raise MalformedResponseError(f"a 2xx answer the SDK cannot parse: {exc}") from exc

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> Exception:
            return final_error(
                where,
                exc,
                verdict,
                attempts,
                [self._api_key],
                error=StoreError,
                permanent=PineconePermanentError,
                auth=PineconeAuthError,
                auth_hint="check the store's API key",
            )

        return call_with_retries(
            attempt,
            stats=self.calls,
            describe=describe,
            max_attempts=self.max_attempts,
            max_backoff_s=20.0,
            max_retry_after_s=_MAX_RETRY_AFTER,
        )


def safe_metadata(metadata: dict, vector_id: str) -> dict:
    """Metadata Pinecone accepts: no nulls, lists of strings only, at most 40 KB.

    An over-size record loses the end of its display `text`; the vector itself still holds
    the whole chunk's meaning.
    """
    safe = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            safe[key] = [str(v) for v in value]
        elif isinstance(value, (str, bool, int, float)):
            safe[key] = value
        else:
            safe[key] = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    size = _json_bytes(safe)
    while size > MAX_METADATA_BYTES and isinstance(safe.get("text"), str) and safe["text"]:
        # Cut in proportion (escapes make JSON longer than the raw text), then re-measure.
        text = safe["text"].encode("utf-8", "surrogatepass")
        keep = int(len(text) * MAX_METADATA_BYTES / size) - 64
        safe["text"] = text[: max(0, keep)].decode("utf-8", "ignore")
        size = _json_bytes(safe)
    excess = size - MAX_METADATA_BYTES
    if excess > 0:
        raise StoreError(
            f"metadata of {vector_id!r} is {excess} bytes over Pinecone's 40 KB limit "
            "even without its text: shrink the source's metadata fields"
        )
    return safe


def _plan_updates(
    wanted: dict[str, dict], stored: dict[str, tuple[list[float], dict]]
) -> tuple[list[str], list[tuple[str, dict]], list[dict]]:
    """Split the held ids into already current, patchable (their changed keys) and to be
    rewritten whole (a stored key is gone from the new metadata)."""
    current, patches, rewrites = [], [], []
    for vector_id, new in wanted.items():
        if vector_id not in stored:
            continue
        values, old = stored[vector_id]
        changed = {k: v for k, v in new.items() if k not in old or not _same(old[k], v)}
        if old.keys() - new.keys():
            rewrites.append({"id": vector_id, "values": values, "metadata": new})
        elif changed:
            patches.append((vector_id, changed))
        else:
            current.append(vector_id)
    return current, patches, rewrites


def _same(stored, new) -> bool:
    """Equal as Pinecone holds them: 3 and 3.0 alike (it keeps numbers as floats), True
    and 1 not."""
    return stored == new and isinstance(stored, bool) == isinstance(new, bool)


def _json_bytes(value) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _estimated_bytes(vector: dict) -> int:
    return (
        4 * len(vector["values"])
        + _json_bytes(vector["metadata"])
        + len(vector["id"].encode())
        + _VECTOR_OVERHEAD_BYTES
    )
