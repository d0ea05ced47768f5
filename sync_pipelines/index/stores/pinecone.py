"""Pinecone as the vector store, through the `pinecone` SDK's data plane."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
import pinecone
from pinecone.errors import (
    ApiError,
    ForbiddenError,
    PineconeConnectionError,
    PineconeTimeoutError,
    UnauthorizedError,
)
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from sync_pipelines.index.stores.base import (
    Match,
    SearchFilter,
    StoreDimensionError,
    StoreError,
    VectorRecord,
    batched,
)

MAX_IDS_PER_REQUEST = 1000  # vectors per upsert, ids per delete
LIST_PAGE_IDS = 100  # the most list returns per page
FETCH_IDS_PER_REQUEST = 100  # fetch sends ids in the URL: keep it short
MAX_METADATA_BYTES = 40 * 1024
_SIZE_MARGIN = 0.95  # our size estimate is close to, not exactly, the server's
_VECTOR_OVERHEAD_BYTES = 32  # keys and punctuation around each vector
_MAX_RETRY_AFTER = 60.0
_DEFAULT_NAMESPACE_KEYS = ("", "__default__")  # describe_index_stats names it either way


class PineconeAuthError(StoreError):
    """Pinecone rejected the API key: retrying cannot help."""


class PineconeStore:
    """One namespace of a Pinecone index, addressed by its host.

    Upserts go in batches bounded by vector count and by estimated request size (4 bytes per
    value plus metadata and id), several in flight at once. Every call is retried with
    jittered exponential backoff on 429 (honouring Retry-After), 5xx, timeouts and connection
    errors, on top of the SDK's own short retries; 400/401/403 fail at once with the host and
    namespace named (never the key).
    """

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
        self.retries = 0  # retried calls, for run metrics
        self._api_key = api_key
        self._lock = threading.Lock()
        self._index = pinecone.Pinecone(api_key=api_key, timeout=timeout).Index(host=host)

    def ensure_dimension(self, dim: int) -> None:
        stats = self._call(self._index.describe_index_stats)
        if stats.dimension is None:
            raise StoreError(f"Pinecone index at {self.host} has no dense vectors to hold chunks")
        if stats.dimension != dim:
            raise StoreDimensionError(self.name, stats.dimension, dim)

    def upsert(self, records: Sequence[VectorRecord]) -> int:
        latest = {r.id: r for r in records}.values()  # one per id: the last one wins
        vectors = [
            {
                "id": r.id,
                "values": np.asarray(r.values, dtype=np.float32).tolist(),
                "metadata": safe_metadata(r.metadata, r.id),
            }
            for r in latest
        ]
        batches = self._size_batches(vectors)
        self._parallel(
            lambda batch: self._call(self._index.upsert, vectors=batch, namespace=self.namespace),
            batches,
        )
        return len(batches)

    def delete(self, ids: Sequence[str]) -> int:
        batches = list(batched(sorted(set(ids)), MAX_IDS_PER_REQUEST))
        self._parallel(
            lambda batch: self._call(self._index.delete, ids=list(batch), namespace=self.namespace),
            batches,
        )
        return len(batches)

    def query(self, vector, top_k: int, filter: SearchFilter) -> list[Match]:
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
            include_metadata=True,
        )
        return [Match(m.id, float(m.score), dict(m.metadata or {})) for m in response.matches]

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
        found = {}
        for batch in batched(sorted(set(ids)), FETCH_IDS_PER_REQUEST):
            response = self._call(self._index.fetch, ids=list(batch), namespace=self.namespace)
            found.update({i: dict(v.metadata or {}) for i, v in response.vectors.items()})
        return found

    def compact(self) -> None:
        """Nothing to do: Pinecone compacts server-side."""

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

    def _parallel(self, send: Callable, batches: list) -> None:
        if len(batches) <= 1 or self.max_workers <= 1:
            for batch in batches:
                send(batch)
            return
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            for _ in pool.map(send, batches):  # re-raises the first failure
                pass

    def _call(self, method: Callable, **kwargs):
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            wait=_wait_for_retry,
            stop=stop_after_attempt(self.max_attempts),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            return retrying(method, **kwargs)
        except (UnauthorizedError, ForbiddenError) as exc:
            raise PineconeAuthError(
                f"Pinecone rejected the API key for index host {self.host} namespace "
                f"{self.namespace!r} (HTTP {exc.status_code}): {self._redact(exc.message)}"
            ) from None
        except ApiError as exc:
            raise StoreError(
                f"Pinecone index host {self.host} namespace {self.namespace!r} answered "
                f"HTTP {exc.status_code} to {method.__name__}: {self._redact(exc.message)}"
            ) from None
        except (PineconeConnectionError, PineconeTimeoutError) as exc:
            raise StoreError(
                f"Pinecone index host {self.host} unreachable for {method.__name__} after "
                f"{self.max_attempts} attempts: {exc}"
            ) from exc

    def _count_retry(self, _state) -> None:
        with self._lock:
            self.retries += 1

    def _redact(self, message: str) -> str:
        return str(message).replace(self._api_key, "***")


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


def _json_bytes(value) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _estimated_bytes(vector: dict) -> int:
    return (
        4 * len(vector["values"])
        + _json_bytes(vector["metadata"])
        + len(vector["id"].encode())
        + _VECTOR_OVERHEAD_BYTES
    )


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, (PineconeConnectionError, PineconeTimeoutError))


def _wait_for_retry(state) -> float:
    """The server's Retry-After when it sent one, else jittered exponential backoff."""
    exc = state.outcome.exception()
    headers = getattr(exc, "headers", None) or {}
    retry_after = next((v for k, v in dict(headers).items() if k.lower() == "retry-after"), None)
    try:
        return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return _BACKOFF(state)


_BACKOFF = wait_random_exponential(multiplier=0.5, max=20)
