"""vector_index keeps its progress per (store, embedder): real materializations pointed at a
new store, a new embedder of the same dimension, and a deployment whose cursor is only in the
asset's metadata."""

from __future__ import annotations

import lancedb
import numpy as np
import pytest
import sqlalchemy as sa
from sync_pipelines_sandbox.company import Company

from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.progress import IndexProgress, index_progress
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines_tests.conftest import day

pytestmark = pytest.mark.integration


class MirroredHashing(HashingEmbedder):
    """Another embedder of the same dimension: hashing vectors with their axes reversed, so
    every vector differs while sizes match (the case StoreDimensionError cannot catch)."""

    def __init__(self, dimension: int = 384):
        super().__init__(dimension)
        self.signature = f"mirrored-hashing:{dimension}"

    def embed(self, texts):
        return np.ascontiguousarray(super().embed(texts)[:, ::-1])


class MirroredHashingResource(EmbedderResource):
    def build(self):
        return MirroredHashing(self.dimension or 384)


def lance_store(harness, folder: str) -> VectorStoreResource:
    return VectorStoreResource(
        kind="lance",
        lance_path=str(harness.tmp / folder),
        ledger_url=f"sqlite:///{harness.tmp / 'ledger.sqlite'}",
    )


def index(harness) -> tuple[dict, list[str]]:
    """Materialize vector_index: its metadata and the messages it logged."""
    result = harness.index()
    messages = [
        e.user_message
        for e in harness.instance.all_logs(result.run_id)
        if e.dagster_event is None and e.user_message
    ]
    return harness.metadata(result, "vector_index"), messages


def forget(ledger, store: str) -> None:
    """Drop a store's progress row, as a deployment from before per-store progress lacks it."""
    with ledger.engine.begin() as conn:
        conn.execute(sa.delete(index_progress).where(index_progress.c.store == store))


def stored_vectors(harness) -> dict[str, tuple[str, np.ndarray]]:
    """id -> (embedded text, vector), read straight from the LanceDB table."""
    table = lancedb.connect(harness.vector_store.lance_path).open_table("chunks").to_arrow()
    rows = zip(table["id"].to_pylist(), table["text"].to_pylist(), table["vector"].to_pylist())
    return {i: (text, np.asarray(vector, dtype=np.float32)) for i, text, vector in rows}


def assert_embedded_by(harness, embedder) -> None:
    stored = stored_vectors(harness)
    texts = [text for text, _ in stored.values()]
    expected = embedder.embed(texts)
    actual = np.stack([vector for _, vector in stored.values()])
    assert np.allclose(actual, expected, atol=1e-6), "a vector from another embedder remains"


@pytest.fixture
def company() -> Company:
    return Company.generate(seed=11, messages=300, days=4)


@pytest.fixture
def synced(harness):
    harness.vector_store = lance_store(harness, "first")
    harness.embedder = EmbedderResource(kind="hashing", dimension=384)
    harness.sync_slack([day(-2), day(-1)])
    first, _ = index(harness)
    assert first["chunks_embedded"] == first["vectors_in_store"] > 0
    return harness, first


def test_a_new_store_is_rebuilt_in_full_and_each_store_keeps_its_own_progress(synced):
    harness, first = synced
    harness.vector_store = lance_store(harness, "second")
    second, messages = index(harness)
    store = harness.vector_store.build()
    assert any(
        f"no progress for store {store.name} with embedder hashing-v1:384: rebuilding from "
        f"{first['document_files']} document files" in m
        for m in messages
    )
    assert second["document_files"] == first["document_files"]
    assert second["chunks_embedded"] == first["chunks_embedded"]
    assert second["vectors_in_store"] == first["vectors_in_store"]

    again, _ = index(harness)  # unchanged configuration: nothing to do
    assert (again["document_files"], again["chunks_embedded"]) == (0, 0)

    harness.sync_slack([day(-1)])  # lands once, applied by each store from its own cursor
    on_second, _ = index(harness)
    harness.vector_store = lance_store(harness, "first")
    on_first, _ = index(harness)
    assert on_second["document_files"] == on_first["document_files"] >= 1
    assert on_first["chunks_embedded"] == on_second["chunks_embedded"] == 0
    assert on_first["vectors_in_store"] == first["vectors_in_store"]


def test_a_new_embedder_of_the_same_size_rebuilds_the_store_without_mixing(synced):
    harness, first = synced
    harness.embedder = MirroredHashingResource(kind="hashing", dimension=384)
    mirrored, messages = index(harness)
    store = harness.vector_store.build()
    assert any(
        f"store {store.name} held vectors of embedder hashing-v1:384, not mirrored-hashing:384" in m
        for m in messages
    )
    assert mirrored["chunks_embedded"] == mirrored["vectors_in_store"]
    assert mirrored["vectors_in_store"] == first["vectors_in_store"]
    assert_embedded_by(harness, MirroredHashing(384))

    again, _ = index(harness)
    assert again["chunks_embedded"] == 0

    harness.embedder = EmbedderResource(kind="hashing", dimension=384)  # and back
    back, _ = index(harness)
    assert back["chunks_embedded"] == back["vectors_in_store"] == first["vectors_in_store"]
    assert_embedded_by(harness, HashingEmbedder(384))
    ledger = harness.vector_store.ledger(store)
    assert IndexProgress.beside(ledger).get(store.name).embedder == "hashing-v1:384"


def test_a_cursor_only_in_metadata_is_adopted_without_a_rebuild(synced):
    harness, first = synced
    store = harness.vector_store.build()
    ledger = harness.vector_store.ledger(store)
    progress = IndexProgress.beside(ledger)
    recorded = progress.get(store.name)
    forget(ledger, store.name)  # as a deployment from before per-store progress

    harness.sync_slack([day(-1)])
    adopted, messages = index(harness)
    assert any("adopted the cursor of vector_index's last materialization" in m for m in messages)
    assert 1 <= adopted["document_files"] < first["document_files"] + 1
    assert adopted["chunks_embedded"] == 0
    assert adopted["vectors_in_store"] == first["vectors_in_store"]
    now = progress.get(store.name)
    assert now.embedder == recorded.embedder == "hashing-v1:384"
    assert now.cursor.storage_id > recorded.cursor.storage_id

    forget(ledger, store.name)  # the same, but the embedder changed since that run
    harness.embedder = MirroredHashingResource(kind="hashing", dimension=384)
    rebuilt, messages = index(harness)
    assert any("held vectors of an unrecorded embedder" in m for m in messages)
    assert rebuilt["chunks_embedded"] == rebuilt["vectors_in_store"] == first["vectors_in_store"]
    assert_embedded_by(harness, MirroredHashing(384))
    assert progress.get(store.name).embedder == "mirrored-hashing:384"
    assert progress.get(store.name).cursor.storage_id == now.cursor.storage_id
