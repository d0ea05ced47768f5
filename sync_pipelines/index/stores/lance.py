"""The embedded default store: a LanceDB table on local disk, no server to run."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import timedelta

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS
from lancedb.query import BooleanQuery, MatchQuery, Occur, PhraseQuery

from sync_pipelines.index.stores.base import (
    IdsDone,
    Match,
    RequestDone,
    SearchFilter,
    StoreDimensionError,
    VectorRecord,
    batched,
)

# Metadata fields with columns of their own (filtered on or shown); the rest travels as JSON.
_COLUMNS = ("access", "source", "doc_id", "text")
_RESULT_COLUMNS = ["id", *_COLUMNS, "meta"]
_IDS_PER_STATEMENT = 500
_ROWS_PER_WRITE = 10_000
# The full-text index over chunk text. Positions let a phrase ("SUBS-121" is the tokens
# "subs" "121" side by side) outrank a chunk that holds the same tokens apart.
_TEXT_INDEX = FTS(with_position=True)

log = logging.getLogger(__name__)


class LanceStore:
    """Chunks in one LanceDB table, searched by cosine distance or by BM25 over the chunk
    text (LanceDB's native full-text index), both with an access prefilter.

    Every read checks for the latest table version, so runs in separate processes (Dagster
    starts one per run) see each other's writes. Rows written after the full-text index was
    built are still found by keyword search (LanceDB scans them); `compact` folds them in.
    """

    supports_keyword = True

    def __init__(self, path: str | os.PathLike, table: str = "chunks"):
        self.path = os.path.abspath(path)
        self.table_name = table
        self.name = f"lance:{self.path}:{table}"
        self._db = lancedb.connect(self.path, read_consistency_interval=timedelta(0))
        self._table = None
        self._text_indexed = False

    def ensure_dimension(self, dim: int) -> None:
        table = self._open()
        if table is None:
            table = self._table = self._db.create_table(
                self.table_name, schema=_schema(dim), exist_ok=True
            )
        actual = table.schema.field("vector").type.list_size
        if actual != dim:
            raise StoreDimensionError(self.name, actual, dim)

    def upsert(self, records: Sequence[VectorRecord], on_request: RequestDone | None = None) -> int:
        latest = list({r.id: r for r in records}.values())  # one row per id: last one wins
        if not latest:
            return 0
        dim = len(latest[0].values)
        self.ensure_dimension(dim)
        writes = 0
        for batch in batched(latest, _ROWS_PER_WRITE):
            (
                self._table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(_rows(batch, dim, self.name))
            )
            writes += 1
            if on_request is not None:
                on_request(batch)
        return writes

    def update_metadata(
        self, items: Sequence[tuple[str, dict]], on_request: IdsDone | None = None
    ) -> int:
        """Rewrite every column but `vector` in one merge per batch: the stored vectors stay
        as they are and ids the table lacks are not inserted."""
        table = self._open()
        latest = list(dict(items).items())  # one row per id: last one wins
        if table is None or not latest:
            return 0
        requests = 0
        for batch in batched(latest, _ROWS_PER_WRITE):
            ids = [vector_id for vector_id, _ in batch]
            merged = (
                table.merge_insert("id")
                .when_matched_update_all()
                .execute(_metadata_rows(ids, [metadata for _, metadata in batch]))
            )
            requests += 1
            # Fewer rows updated than sent: some ids are not held (or Lance undercounted,
            # which costs only this read): ask which.
            if merged.num_updated_rows != len(ids):
                held, reads = _held(table, ids)
                requests += reads
                ids = [i for i in ids if i in held]
            if ids and on_request is not None:
                on_request(ids)
        return requests

    def delete(self, ids: Sequence[str]) -> int:
        table = self._open()
        if table is None or not ids:
            return 0
        statements = 0
        for batch in batched(list(ids), _IDS_PER_STATEMENT):
            table.delete(f"id IN ({_sql_list(batch)})")
            statements += 1
        return statements

    def query(self, vector, top_k: int, filter: SearchFilter) -> list[Match]:
        table = self._open()
        if table is None:
            return []
        vector = np.asarray(vector, dtype=np.float32)
        dim = table.schema.field("vector").type.list_size
        if vector.shape != (dim,):
            raise StoreDimensionError(self.name, dim, vector.size)
        rows = (
            table.search(vector, vector_column_name="vector")
            .distance_type("cosine")
            .where(_where(filter), prefilter=True)
            .select([*_RESULT_COLUMNS, "_distance"])
            .limit(top_k)
            .to_list()
        )
        return [Match(r["id"], 1.0 - float(r["_distance"]), _metadata(r)) for r in rows]

    def keyword_query(self, text: str, top_k: int, filter: SearchFilter) -> list[Match]:
        """BM25 over the chunk text: any of the query's words, the whole phrase counting
        extra. The text is matched as words, never parsed as query syntax."""
        table = self._open()
        if table is None or not text.strip():
            return []
        self._ensure_text_index(table)
        query = BooleanQuery(
            [
                (Occur.SHOULD, MatchQuery(text, "text")),
                (Occur.SHOULD, PhraseQuery(text, "text")),
            ]
        )
        rows = (
            table.search(query, query_type="fts")
            .where(_where(filter), prefilter=True)
            .select([*_RESULT_COLUMNS, "_score"])
            .limit(top_k)
            .to_list()
        )
        return [Match(r["id"], float(r["_score"]), _metadata(r)) for r in rows]

    def count(self) -> int:
        table = self._open()
        return 0 if table is None else table.count_rows()

    def ids(self) -> set[str]:
        table = self._open()
        if table is None:
            return set()
        return set(table.search().select(["id"]).limit(None).to_arrow()["id"].to_pylist())

    def fetch_metadata(self, ids: Sequence[str]) -> dict[str, dict]:
        table = self._open()
        if table is None:
            return {}
        found = {}
        for batch in batched(list(ids), _IDS_PER_STATEMENT):
            rows = (
                table.search()
                .where(f"id IN ({_sql_list(batch)})")
                .select(_RESULT_COLUMNS)
                .limit(None)
                .to_list()
            )
            found.update({r["id"]: _metadata(r) for r in rows})
        return found

    def compact(self) -> None:
        """Merge the small fragments each upsert leaves and drop old versions (offline)."""
        table = self._open()
        if table is not None:
            table.optimize()  # also folds rows written since into the full-text index
            self._ensure_text_index(table)

    def _ensure_text_index(self, table) -> None:
        """Build the full-text index on first need (tables written before keyword search
        existed have none). Should building fail, e.g. a concurrent build won the commit,
        keyword search still works, by scanning."""
        if self._text_indexed:
            return
        if not any(i.index_type == "FTS" for i in table.list_indices()):
            try:
                table.create_index("text", config=_TEXT_INDEX, replace=True)
            except Exception as exc:  # noqa: BLE001 - searching unindexed still answers
                log.warning(
                    "full-text index on %s not built (%s): scanning instead", self.name, exc
                )
                return
        self._text_indexed = True

    def drop(self) -> None:
        """Remove the whole table: an embedded store is derived data, so a switch of embedder
        (of any vector size) rebuilds it from the document files rather than failing."""
        self._db.drop_table(self.table_name, ignore_missing=True)
        self._table = None
        self._text_indexed = False

    def _open(self):
        if self._table is None:
            try:
                self._table = self._db.open_table(self.table_name)
            except ValueError:  # LanceDB's "table not found"
                return None
        return self._table


def _held(table, ids: Sequence[str]) -> tuple[set[str], int]:
    """Which of these ids the table holds, and the reads it took to find out."""
    held: set[str] = set()
    reads = 0
    for batch in batched(list(ids), _IDS_PER_STATEMENT):
        rows = table.search().where(f"id IN ({_sql_list(batch)})").select(["id"]).limit(None)
        held.update(rows.to_arrow()["id"].to_pylist())
        reads += 1
    return held, reads


# Every column but the vector: what a metadata update rewrites.
_METADATA_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("access", pa.list_(pa.string())),
        pa.field("source", pa.string()),
        pa.field("doc_id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("meta", pa.string()),
    ]
)


def _schema(dim: int) -> pa.Schema:
    return _METADATA_SCHEMA.insert(1, pa.field("vector", pa.list_(pa.float32(), dim)))


def _rows(records: Sequence[VectorRecord], dim: int, store: str) -> pa.Table:
    for record in records:
        if len(record.values) != dim:
            raise StoreDimensionError(store, dim, len(record.values))
    vectors = np.asarray([np.asarray(r.values, dtype=np.float32) for r in records])
    columns = _metadata_columns([r.id for r in records], [r.metadata for r in records])
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)
    return pa.table(columns, schema=_schema(dim))


def _metadata_rows(ids: Sequence[str], metadatas: Sequence[dict]) -> pa.Table:
    return pa.table(_metadata_columns(ids, metadatas), schema=_METADATA_SCHEMA)


def _metadata_columns(ids: Sequence[str], metadatas: Sequence[dict]) -> dict[str, list]:
    rest = [{k: v for k, v in m.items() if k not in _COLUMNS} for m in metadatas]
    return {
        "id": list(ids),
        # Records without access are readable by no one: never default to public.
        "access": [_readers(m.get("access")) for m in metadatas],
        "source": [m.get("source") for m in metadatas],
        "doc_id": [m.get("doc_id") for m in metadatas],
        "text": [m.get("text") for m in metadatas],
        "meta": [json.dumps(m, sort_keys=True, ensure_ascii=False) for m in rest],
    }


def _readers(access) -> list[str]:
    return [access] if isinstance(access, str) else [str(a) for a in access or []]


def _metadata(row: dict) -> dict:
    return {**json.loads(row["meta"] or "{}"), **{c: row[c] for c in _COLUMNS}}


def _where(filter: SearchFilter) -> str:
    """The store-side access (and source) filter, applied before ranking."""
    where = f"array_has_any(access, [{_sql_list(filter.access)}])"
    if filter.source is not None:
        where += f" AND source = {_sql_string(filter.source)}"
    return where


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join(_sql_string(v) for v in values)
