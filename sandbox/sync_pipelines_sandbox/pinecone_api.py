"""Pinecone data-plane emulator (a serverless dense index, cosine metric) with Pinecone's limits.

The real `pinecone` SDK talks to it through `Pinecone(api_key=...).Index(host=...)`. Limits are
the documented ones (1,000 vectors and 2 MB per upsert, 40 KB of metadata per vector, 1,000 ids
per fetch/delete, 512-char ids, top_k ≤ 10,000 and 4 MB per query result), answered as HTTP
400 `{"code": 3, "message", "details"}`, so a client that batches wrongly fails here the way it
would in production.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import json
import math
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines_sandbox import pinecone_filter
from sync_pipelines_sandbox.emulator import Emulator

SANDBOX_PINECONE_KEY = "pcsk-sandbox"
MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2_000_000
MAX_METADATA_BYTES = 40_960
MAX_ID_CHARS = 512
MAX_IDS = 1000
# Query limits as documented (docs.pinecone.io/guides/data/query-data, "Query limits"): top_k
# at most 10,000, and a result (metadata and values included) of at most 4 MB. Older pages
# also capped top_k at 1,000 with include_metadata/include_values; the current ones state the
# size limit instead. "4MB" is read as 4,000,000 bytes: the stricter reading.
MAX_TOP_K = 10_000
MAX_RESULT_BYTES = 4_000_000
MAX_LIST_LIMIT = 100
DEFAULT_NAMESPACE = "__default__"  # how describe_index_stats names the "" namespace


class PineconeError(Exception):
    """An error answer; gRPC-style `code` (3 = INVALID_ARGUMENT) as Pinecone sends it."""

    def __init__(self, message: str, status: int = 400, code: int = 3):
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "details": []}


def metadata_bytes(metadata: Mapping[str, Any] | None) -> int:
    """Size of metadata as counted for the limits: compact UTF-8 JSON."""
    if not metadata:
        return 0
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())


def _validate_metadata(vector_id: str, metadata: Any) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise PineconeError(f"Metadata of vector {vector_id!r} must be a JSON object")
    for key, value in metadata.items():
        ok = (
            isinstance(value, (str, int, float, bool))
            or isinstance(value, list)
            and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise PineconeError(
                f"Metadata value for field {key!r} of vector {vector_id!r} must be a string, "
                f"number, boolean or list of strings, got {json.dumps(value)[:50]}"
            )
    size = metadata_bytes(metadata)
    if size > MAX_METADATA_BYTES:
        raise PineconeError(
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes "
            f"per vector (vector {vector_id!r})"
        )
    return metadata


def _merged(vector_id: str, metadata: dict, patch: dict) -> dict:
    merged = {**metadata, **patch}
    if metadata_bytes(merged) > MAX_METADATA_BYTES:
        raise PineconeError(
            f"Metadata of vector {vector_id!r} would exceed {MAX_METADATA_BYTES} bytes"
        )
    return merged


def _namespace(body: Mapping[str, Any]) -> str:
    name = body.get("namespace") or ""
    return "" if name == DEFAULT_NAMESPACE else str(name)


class _Namespace:
    """Vectors of one namespace plus a lazily rebuilt unit-norm matrix for queries."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[np.ndarray, dict]] = {}
        self._index: tuple[list[str], np.ndarray] | None = None

    def put(self, vector_id: str, values: np.ndarray, metadata: dict) -> None:
        self.records[vector_id] = (values, metadata)
        self._index = None

    def remove(self, vector_id: str) -> None:
        if self.records.pop(vector_id, None) is not None:
            self._index = None

    def index(self, dimension: int) -> tuple[list[str], np.ndarray]:
        if self._index is None:
            ids = list(self.records)
            matrix = np.empty((len(ids), dimension), np.float32)
            for row, vector_id in enumerate(ids):
                matrix[row] = self.records[vector_id][0]
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            self._index = (ids, matrix / np.where(norms == 0, 1, norms))
        return self._index


class PineconeState:
    """One index: its dimension, namespaces, valid keys and a log of (route, vector count)."""

    def __init__(self, dimension: int = 384, key: str = SANDBOX_PINECONE_KEY):
        self.valid_keys: set[str] = {key}
        self.dimension = dimension
        # Service time of every request, on top of the knobs' latency (shared by all the
        # emulators): what a benchmark sets to model Pinecone alone.
        self.latency_ms = 0.0
        self.request_log: list[tuple[str, int]] = []
        self._namespaces: dict[str, _Namespace] = {}
        self._lock = threading.Lock()

    def reset(self, dimension: int | None = None) -> None:
        """Empty the index (and optionally change its dimension), as recreating it would."""
        with self._lock:
            self._namespaces.clear()
            self.request_log.clear()
            if dimension is not None:
                self.dimension = dimension

    def vectors(self, namespace: str = "") -> dict[str, tuple[list[float], dict]]:
        with self._lock:
            ns = self._namespaces.get(namespace)
            records = dict(ns.records) if ns else {}
        return {vid: (values.tolist(), dict(meta)) for vid, (values, meta) in records.items()}

    def _log(self, route: str, count: int) -> None:
        self.request_log.append((route, count))

    def _values(self, vector_id: str, values: Any) -> np.ndarray:
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise PineconeError(f"Values of vector {vector_id!r} must be an array of numbers")
        if len(values) != self.dimension:
            raise PineconeError(
                f"Vector dimension {len(values)} does not match the dimension of the index "
                f"{self.dimension}"
            )
        array = np.asarray(values, np.float32)
        if not np.any(array):
            raise PineconeError(
                f"Dense vector {vector_id!r} must contain at least one non-zero value"
            )
        return array

    # ----------------------------------------------------------------- operations
    def upsert(self, body: Mapping[str, Any]) -> dict:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise PineconeError("Upsert request must contain at least one vector")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise PineconeError(
                f"Upsert request has {len(vectors)} vectors, which exceeds the limit of "
                f"{MAX_UPSERT_VECTORS} vectors per request"
            )
        parsed, size = [], 0
        for vector in vectors:
            if not isinstance(vector, dict):
                raise PineconeError("Each vector must be an object with id and values")
            vector_id = vector.get("id")
            if not isinstance(vector_id, str) or not vector_id:
                raise PineconeError("Vector id must be a non-empty string")
            if len(vector_id) > MAX_ID_CHARS:
                raise PineconeError(
                    f"Vector id length {len(vector_id)} exceeds the limit of {MAX_ID_CHARS}"
                )
            values = self._values(vector_id, vector.get("values"))
            metadata = _validate_metadata(vector_id, vector.get("metadata"))
            size += 4 * len(values) + metadata_bytes(metadata)
            parsed.append((vector_id, values, metadata))
        if size > MAX_REQUEST_BYTES:
            raise PineconeError(
                f"Request size {size} bytes exceeds the maximum supported size of "
                f"{MAX_REQUEST_BYTES} bytes"
            )
        with self._lock:
            ns = self._namespaces.setdefault(_namespace(body), _Namespace())
            for vector_id, values, metadata in parsed:
                ns.put(vector_id, values, metadata)
            self._log("upsert", len(parsed))
        return {"upsertedCount": len(parsed)}

    def query(self, body: Mapping[str, Any]) -> dict:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise PineconeError(f"topK must be an integer between 1 and {MAX_TOP_K}")
        flt = body.get("filter")
        if flt is not None:
            self._check_filter(flt)
        if ("vector" in body) == ("id" in body):
            raise PineconeError("Exactly one of vector or id must be provided")
        with self._lock:
            ns = self._namespaces.get(_namespace(body)) or _Namespace()
            if "id" in body:
                record = ns.records.get(str(body["id"]))
                query = record[0] if record else None
            else:
                query = self._values("query", body["vector"])
            matches = [] if query is None else self._rank(ns, query, flt, top_k)
            self._log("query", 1)
            records = {vid: ns.records[vid] for vid, _ in matches}
        include_values, include_metadata = (
            bool(body.get("includeValues")),
            bool(body.get("includeMetadata")),
        )
        out = []
        for vector_id, score in matches:
            values, metadata = records[vector_id]
            match: dict[str, Any] = {
                "id": vector_id,
                "score": score,
                "values": values.tolist() if include_values else [],
            }
            if include_metadata and metadata:
                match["metadata"] = metadata
            out.append(match)
        size = len(json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_RESULT_BYTES:
            raise PineconeError(
                f"Query result size {size} bytes exceeds the limit of {MAX_RESULT_BYTES} bytes: "
                "lower topK, or leave out metadata or values"
            )
        return {
            "results": [],
            "matches": out,
            "namespace": body.get("namespace") or "",
            "usage": {"readUnits": self._query_read_units(len(ns.records))},
        }

    def _rank(
        self, ns: _Namespace, query: np.ndarray, flt: Any, top_k: int
    ) -> list[tuple[str, float]]:
        ids, matrix = ns.index(self.dimension)
        if flt is not None:
            rows = [
                i for i, vid in enumerate(ids) if pinecone_filter.matches(flt, ns.records[vid][1])
            ]
            ids, matrix = [ids[i] for i in rows], matrix[rows]
        if not ids:
            return []
        scores = matrix @ (query / np.linalg.norm(query))
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(ids[i], float(scores[i])) for i in order]

    def _query_read_units(self, records: int) -> int:
        """Serverless pricing: 1 RU per GB of namespace scanned (values only here), at least 1."""
        return max(1, math.ceil(records * 4 * self.dimension / 1e9))

    @staticmethod
    def _check_filter(flt: Any) -> None:
        try:
            pinecone_filter.validate(flt)
        except pinecone_filter.FilterError as exc:
            raise PineconeError(f"Invalid filter: {exc}") from None

    @staticmethod
    def _ids(ids: Any) -> list[str]:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise PineconeError("ids must be an array of strings")
        if len(ids) > MAX_IDS:
            raise PineconeError(f"Request has {len(ids)} ids, which exceeds the limit of {MAX_IDS}")
        return ids

    def fetch(self, ids: list[str], namespace: str) -> dict:
        ids = self._ids(ids)
        if not ids:
            raise PineconeError("ids must contain at least one id")
        with self._lock:
            ns = self._namespaces.get(namespace) or _Namespace()
            found = {vid: ns.records[vid] for vid in ids if vid in ns.records}
            self._log("fetch", len(ids))
        vectors = {}
        for vector_id, (values, metadata) in found.items():
            vectors[vector_id] = {"id": vector_id, "values": values.tolist()}
            if metadata:
                vectors[vector_id]["metadata"] = metadata
        return {
            "vectors": vectors,
            "namespace": namespace,
            "usage": {"readUnits": max(1, math.ceil(len(ids) / 10))},  # 1 RU per 10 records
        }

    def delete(self, body: Mapping[str, Any]) -> dict:
        given = [key for key in ("ids", "deleteAll", "filter") if body.get(key)]
        if len(given) != 1:
            raise PineconeError("Exactly one of ids, deleteAll or filter must be provided")
        name = _namespace(body)
        if "filter" in given:
            self._check_filter(body["filter"])
        ids = self._ids(body["ids"]) if "ids" in given else []
        with self._lock:
            ns = self._namespaces.get(name)
            if ns is not None:
                if "deleteAll" in given:
                    doomed = list(ns.records)
                elif "filter" in given:
                    doomed = [
                        v
                        for v, (_, m) in ns.records.items()
                        if pinecone_filter.matches(body["filter"], m)
                    ]
                else:
                    doomed = ids
                for vector_id in doomed:
                    ns.remove(vector_id)
                if not ns.records:
                    del self._namespaces[name]
            self._log("delete", len(ids))
        return {}

    def update(self, body: Mapping[str, Any]) -> dict:
        """By id (values and/or setMetadata) or by filter (setMetadata only, `dryRun` counts).

        setMetadata merges: keys it names are set, the others stay. An id the namespace
        does not hold changes nothing and still answers 200, as documented.
        """
        if ("id" in body) == ("filter" in body):
            raise PineconeError("Exactly one of id or filter must be provided")
        if "filter" in body:
            return self._update_by_filter(body)
        vector_id = body["id"]
        if not isinstance(vector_id, str) or not vector_id:
            raise PineconeError("id must be a non-empty string")
        if len(vector_id) > MAX_ID_CHARS:
            raise PineconeError(
                f"Vector id length {len(vector_id)} exceeds the limit of {MAX_ID_CHARS}"
            )
        values = self._values(vector_id, body["values"]) if body.get("values") else None
        patch = _validate_metadata(vector_id, body.get("setMetadata"))
        with self._lock:
            ns = self._namespaces.get(_namespace(body))
            record = ns.records.get(vector_id) if ns else None
            if record is not None:
                metadata = _merged(vector_id, record[1], patch)
                ns.put(vector_id, record[0] if values is None else values, metadata)
            self._log("update", 1)
        return {}

    def _update_by_filter(self, body: Mapping[str, Any]) -> dict:
        flt = body["filter"]
        if not flt:
            raise PineconeError("filter must contain at least one condition")
        self._check_filter(flt)
        if body.get("values") or body.get("sparseValues"):
            raise PineconeError("values and sparseValues can only be updated by id")
        patch = _validate_metadata("(filter)", body.get("setMetadata"))
        with self._lock:
            ns = self._namespaces.get(_namespace(body)) or _Namespace()
            matched = [v for v, (_, m) in ns.records.items() if pinecone_filter.matches(flt, m)]
            if not body.get("dryRun"):
                merged = {v: _merged(v, ns.records[v][1], patch) for v in matched}
                for vector_id, metadata in merged.items():  # all or nothing
                    ns.put(vector_id, ns.records[vector_id][0], metadata)
            self._log("update", len(matched))
        return {"matchedRecords": len(matched)}

    def list_ids(self, params: Mapping[str, str]) -> dict:
        """IDs in lexicographic order, `limit` (≤100) per page, opaque pagination token."""
        try:
            limit = int(params.get("limit") or MAX_LIST_LIMIT)
        except ValueError:
            raise PineconeError("limit must be an integer") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise PineconeError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        prefix, token, name = (
            params.get("prefix", ""),
            params.get("paginationToken"),
            _namespace(params),
        )
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode() if token else None
        except (binascii.Error, UnicodeDecodeError):
            raise PineconeError("Invalid pagination token") from None
        with self._lock:
            ns = self._namespaces.get(name)
            ids = sorted(v for v in ns.records if v.startswith(prefix)) if ns else []
            self._log("list", 0)
        start = bisect.bisect_right(ids, after) if after is not None else 0
        page = ids[start : start + limit]
        out: dict[str, Any] = {
            "vectors": [{"id": v} for v in page],
            "namespace": params.get("namespace", ""),
            "usage": {"readUnits": 1},
        }
        if start + limit < len(ids):
            out["pagination"] = {"next": base64.urlsafe_b64encode(page[-1].encode()).decode()}
        return out

    def describe_index_stats(self, body: Mapping[str, Any]) -> dict:
        if body.get("filter"):
            raise PineconeError(
                "Serverless and starter indexes do not support describing index stats "
                "with metadata filtering."
            )
        with self._lock:
            counts = {
                name or DEFAULT_NAMESPACE: len(ns.records) for name, ns in self._namespaces.items()
            }
            self._log("describe_index_stats", 0)
        return {
            "namespaces": {name: {"vectorCount": n} for name, n in counts.items()},
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": "cosine",
            "vectorType": "dense",
        }


# ------------------------------------------------------------------ HTTP
_POST_ROUTES = {
    "/vectors/upsert": PineconeState.upsert,
    "/query": PineconeState.query,
    "/vectors/delete": PineconeState.delete,
    "/vectors/update": PineconeState.update,
    "/describe_index_stats": PineconeState.describe_index_stats,
}


def make_app(state: PineconeState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("api-key") in state.valid_keys

    async def post(request: Request) -> JSONResponse:
        if state.latency_ms > 0:
            await asyncio.sleep(state.latency_ms / 1000)
        if not authorized(request):
            return _error(PineconeError("Invalid API Key", 401, 16))
        try:
            # orjson (a dependency of the pinecone SDK): parsing an upsert's thousands of
            # floats with json took longer than the service time a benchmark models.
            body = orjson.loads(await request.body() or b"{}")
        except ValueError:
            return _error(PineconeError("Request body is not valid JSON"))
        if not isinstance(body, dict):
            return _error(PineconeError("Request body must be a JSON object"))
        return await _run(_POST_ROUTES[request.url.path], state, body)

    async def get(request: Request) -> JSONResponse:
        if state.latency_ms > 0:
            await asyncio.sleep(state.latency_ms / 1000)
        if not authorized(request):
            return _error(PineconeError("Invalid API Key", 401, 16))
        path, query = request.url.path, request.query_params
        if path == "/vectors/fetch":
            return await _run(PineconeState.fetch, state, query.getlist("ids"), _namespace(query))
        if path == "/vectors/list":
            return await _run(PineconeState.list_ids, state, dict(query))
        return await _run(PineconeState.describe_index_stats, state, {})

    routes = [Route(path, post, methods=["POST"]) for path in _POST_ROUTES]
    routes += [
        Route(path, get, methods=["GET"])
        for path in ("/vectors/fetch", "/vectors/list", "/describe_index_stats")
    ]
    return Starlette(routes=routes)


async def _run(operation, *args: Any) -> JSONResponse:
    try:
        return JSONResponse(await run_in_threadpool(operation, *args))
    except PineconeError as exc:
        return _error(exc)


def _error(exc: PineconeError) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status)


_ROUTES = {
    "/vectors/upsert": "upsert",
    "/query": "query",
    "/vectors/fetch": "fetch",
    "/vectors/delete": "delete",
    "/vectors/update": "update",
    "/vectors/list": "list",
    "/describe_index_stats": "describe_index_stats",
}


def _route_of(scope: Scope) -> str:
    return _ROUTES.get(scope["path"], scope["path"])


_FAULTS = {
    "429": (
        429,
        {
            "code": 8,
            "message": "Request failed. You've reached the max request rate for "
            "this index. Back off and retry.",
            "details": [],
        },
    ),
    "401": (401, {"code": 16, "message": "Invalid API Key", "details": []}),
    "500": (500, {"code": 13, "message": "Internal error", "details": []}),
    "503": (503, {"code": 14, "message": "Service unavailable", "details": []}),
}

EMULATOR = Emulator(
    name="pinecone",
    port_offset=3,
    make_state=lambda company, options: PineconeState(options.get("pinecone_dimension", 384)),
    make_app=make_app,
    route_of=_route_of,
    fault_body=_FAULTS.__getitem__,
    client_url=lambda root: root,
    env=lambda url, state: {"PINECONE_API_KEY": SANDBOX_PINECONE_KEY, "PINECONE_HOST": url},
)
