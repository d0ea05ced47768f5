"""Vector stores and search: LanceDB on disk, Pinecone against the sandbox emulator.

The property that matters most: a chunk is never returned to someone outside its access list.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pinecone
import pytest

from sync_pipelines import resilience
from sync_pipelines.errors import PermanentError
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.search import search
from sync_pipelines.index.stores import build_store
from sync_pipelines.index.stores.base import (
    KeywordSearchUnavailable,
    Match,
    SearchFilter,
    StoreDimensionError,
    StoreError,
    VectorRecord,
)
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.stores.pinecone import (
    PineconeAuthError,
    PineconePermanentError,
    PineconeStore,
)
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_sandbox.server import Sandbox

OUTSIDER = "eve@outside.test"
INSIDER = "ana@acme.test"


def record(vector_id: str, vector, access=("all",), source="slack", **extra) -> VectorRecord:
    doc_id = vector_id.split("#")[0]
    metadata = {"access": list(access), "source": source, "doc_id": doc_id,
                "text": f"text of {vector_id}", **extra}
    return VectorRecord(vector_id, np.asarray(vector, dtype=np.float32), metadata)


def unit(rng, dim: int, around=None, noise: float = 1.0) -> np.ndarray:
    vector = rng.normal(size=dim) * noise + (0 if around is None else around)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def mixed_records(dim: int, n: int = 60, seed: int = 1):
    """A query vector, private records right next to it, public ones further away."""
    rng = np.random.default_rng(seed)
    query = unit(rng, dim)
    records = []
    for i in range(n):
        private = i % 3 != 0
        vector = unit(rng, dim, around=query * 20, noise=1.0 if private else 3.0)
        access = (INSIDER, "eng@acme.test") if private else ("all",)
        records.append(record(f"doc{i}#0", vector, access, source="jira" if i % 2 else "slack"))
    return query, records


def assert_never_leaks(matches: list[Match], identities: set[str]) -> None:
    for match in matches:
        assert set(match.metadata["access"]) & (identities | {"all"}), match.id


# --- LanceStore ------------------------------------------------------------------------------


@pytest.fixture
def lance(tmp_path) -> LanceStore:
    return LanceStore(tmp_path / "vectors")


def test_lance_empty_store(lance):
    assert lance.count() == 0 and lance.ids() == set()
    assert lance.query([1.0, 0.0], 5, SearchFilter(["all"])) == []
    assert lance.delete(["x#0"]) == 0 and lance.fetch_metadata(["x#0"]) == {}
    assert lance.name.startswith("lance:") and lance.name.endswith(":chunks")


def test_lance_upsert_overwrite_delete_query(lance):
    lance.ensure_dimension(4)
    assert lance.upsert([
        record("a#0", [1, 0, 0, 0], title="A", timestamp_epoch=1.5, tags=["x", "y"]),
        record("a#1", [0, 1, 0, 0]),
        record("it's\\odd#0", [0, 0, 1, 0]),
    ]) == 1
    assert lance.count() == 3
    (top,) = lance.query([1, 0, 0, 0], 1, SearchFilter(["all"]))
    assert top.id == "a#0" and top.score == pytest.approx(1.0)
    assert top.metadata == {"access": ["all"], "source": "slack", "doc_id": "a",
                            "text": "text of a#0", "title": "A", "timestamp_epoch": 1.5,
                            "tags": ["x", "y"]}

    lance.upsert([record("a#0", [0, 0, 0, 1], title="A2")])  # overwrite by id
    assert lance.count() == 3
    assert lance.fetch_metadata(["a#0"])["a#0"]["title"] == "A2"
    assert lance.query([0, 0, 0, 1], 1, SearchFilter(["all"]))[0].id == "a#0"

    assert lance.delete(["it's\\odd#0", "never#0"]) == 1
    assert lance.ids() == {"a#0", "a#1"}


def test_lance_access_filter_never_returns_private_chunks(lance):
    query, records = mixed_records(16)
    lance.ensure_dimension(16)
    lance.upsert(records)
    outsider = lance.query(query, 50, SearchFilter([OUTSIDER]))
    assert outsider and all(m.metadata["access"] == ["all"] for m in outsider)
    insider = lance.query(query, 5, SearchFilter([INSIDER.upper()]))
    assert all(m.metadata["access"] != ["all"] for m in insider)  # the close private ones
    assert [m.score for m in insider] == sorted((m.score for m in insider), reverse=True)
    jira = lance.query(query, 50, SearchFilter([INSIDER], source="jira"))
    assert jira and {m.metadata["source"] for m in jira} == {"jira"}
    assert lance.query(query, 5, SearchFilter([INSIDER], source="it's")) == []


def text_indexes(lance: LanceStore) -> list:
    return [i for i in lance._open().list_indices() if i.index_type == "FTS"]


def test_lance_keyword_query_ranks_by_bm25_behind_the_access_filter(lance):
    assert lance.keyword_query("SUBS-121", 5, SearchFilter(["all"])) == []  # no table yet
    lance.ensure_dimension(4)
    texts = {
        "key#0": ("SUBS-121 move subscriptions to the new provider", ("all",), "jira"),
        "apart#0": ("SUBS-12 has 121 open subscriptions", ("all",), "jira"),
        "chat#0": ("the quarterly offsite: what's up", ("all",), "slack"),
        "private#0": ("SUBS-121 salary review", (INSIDER,), "slack"),
    }
    lance.upsert(
        [
            record(vector_id, [1, 0, 0, 0], access, source, text=text)
            for vector_id, (text, access, source) in texts.items()
        ]
    )
    assert text_indexes(lance) == []  # built on first need, not by writes
    found = lance.keyword_query("SUBS-121", 10, SearchFilter([OUTSIDER]))
    assert [m.id for m in found] == ["key#0", "apart#0"]  # the phrase counts extra
    assert found[0].score > found[1].score > 0 and found[0].metadata["source"] == "jira"
    assert len(text_indexes(lance)) == 1
    insider = lance.keyword_query("salary SUBS-121", 10, SearchFilter([INSIDER], source="slack"))
    assert [m.id for m in insider] == ["private#0"]
    # Query text is words, never query syntax.
    for odd in ('offsite: "quoted', "OR offsite AND -", "text:offsite (x"):
        assert [m.id for m in lance.keyword_query(odd, 5, SearchFilter([]))] == ["chat#0"]

    # Rows written after the index are found at once; compaction folds them in.
    lance.upsert([record("late#0", [0, 1, 0, 0], text="SUBS-121 follow-up SUBS-121")])
    assert lance.keyword_query("SUBS-121", 1, SearchFilter([]))[0].id == "late#0"
    lance.compact()
    (index,) = text_indexes(lance)
    assert LanceStore(lance.path).keyword_query("follow-up", 3, SearchFilter([]))[0].id == "late#0"
    assert lance._open().index_stats(index.name).num_unindexed_rows == 0


def test_lance_compaction_builds_the_text_index_of_an_older_table(lance):
    lance.ensure_dimension(4)
    lance.upsert([record("a#0", [1, 0, 0, 0], text="written before keyword search existed")])
    lance.compact()
    assert len(text_indexes(lance)) == 1


def test_lance_dimension_mismatch_is_a_clear_error(lance):
    lance.ensure_dimension(4)
    with pytest.raises(StoreDimensionError, match="has dimension 4 but embedder produces 8"):
        lance.ensure_dimension(8)
    with pytest.raises(StoreDimensionError, match="dimension 4 but embedder produces 3"):
        lance.upsert([record("a#0", [1, 0, 0])])
    with pytest.raises(StoreDimensionError):
        lance.query([1, 0], 3, SearchFilter(["all"]))


def test_lance_batched_deletes_and_compaction(lance):
    rng = np.random.default_rng(0)
    lance.ensure_dimension(8)
    for start in range(0, 1200, 100):  # many small writes leave many fragments
        lance.upsert([record(f"d{i}#0", unit(rng, 8)) for i in range(start, start + 100)])
    assert lance.delete([f"d{i}#0" for i in range(1100)]) == 3  # 500 ids per statement
    lance.compact()
    assert lance.count() == 100 and lance.ids() == {f"d{i}#0" for i in range(1100, 1200)}
    lance.upsert([record("late#0", unit(rng, 8))])
    assert lance.count() == 101


def test_lance_runs_in_separate_processes_see_each_other(lance, tmp_path):
    lance.ensure_dimension(4)
    lance.upsert([record("parent#0", [1, 0, 0, 0])])
    script = (
        "import sys\n"
        "from sync_pipelines.index.stores.lance import LanceStore\n"
        "from sync_pipelines.index.stores.base import VectorRecord\n"
        "store = LanceStore(sys.argv[1])\n"
        "print(sorted(store.ids()))\n"
        "store.upsert([VectorRecord('child#0', [0, 1, 0, 0], {'access': ['all']})])\n"
        "store.delete(['parent#0'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "vectors")],
        capture_output=True, text=True, check=True, env=dict(os.environ),
    ).stdout
    assert "parent#0" in out
    assert lance.ids() == {"child#0"}  # the same open store sees the other process's writes


READER_A, READER_B = "a@x.test", "b@x.test"


def narrowed(vector_id: str, **extra) -> tuple[str, dict]:
    """The complete new metadata of a chunk once its access list is narrowed to A."""
    return vector_id, record(vector_id, [1], access=(READER_A,), title="New", **extra).metadata


def test_lance_update_metadata_in_place(lance):
    lance.ensure_dimension(4)
    lance.upsert([
        record("shared#0", [1, 0, 0, 0], access=(READER_A, READER_B), title="Old", tags=["t"]),
        record("other#0", [0.6, 0.8, 0, 0]),
    ])
    schema = lance._table.schema
    (before,) = lance.query([1, 0, 0, 0], 1, SearchFilter([READER_B]))
    assert before.id == "shared#0"
    told = []
    requests = lance.update_metadata([narrowed("shared#0"), narrowed("ghost#0")], told.append)
    assert requests == 2  # the merge, then one read to learn which ids were held
    assert told == [["shared#0"]]
    assert lance.ids() == {"shared#0", "other#0"} and lance._table.schema == schema
    assert lance.fetch_metadata(["shared#0"])["shared#0"] == narrowed("shared#0")[1]  # no tags
    assert "shared#0" not in {m.id for m in lance.query([1, 0, 0, 0], 5, SearchFilter([READER_B]))}
    (after,) = lance.query([1, 0, 0, 0], 1, SearchFilter([READER_A]))
    assert after.id == "shared#0" and after.score == pytest.approx(before.score, abs=1e-6)
    assert lance.query([0.6, 0.8, 0, 0], 1, SearchFilter([OUTSIDER]))[0].id == "other#0"


def test_lance_update_metadata_batches(lance, monkeypatch):
    from sync_pipelines.index.stores import lance as lance_module

    monkeypatch.setattr(lance_module, "_ROWS_PER_WRITE", 2)
    rng = np.random.default_rng(3)
    lance.ensure_dimension(8)
    lance.upsert([record(f"d{i}#0", unit(rng, 8)) for i in range(5)])
    told = []
    assert lance.update_metadata([narrowed(f"d{i}#0") for i in range(5)], told.append) == 3
    assert told == [["d0#0", "d1#0"], ["d2#0", "d3#0"], ["d4#0"]]
    found = lance.fetch_metadata([f"d{i}#0" for i in range(5)])
    assert {m["title"] for m in found.values()} == {"New"}
    assert LanceStore(lance.path).update_metadata([narrowed("d0#0")]) == 1
    assert LanceStore(lance.path, table="none").update_metadata([narrowed("d0#0")]) == 0


def test_build_store(tmp_path):
    assert isinstance(build_store("lance", path=tmp_path / "v"), LanceStore)
    with pytest.raises(ValueError, match="'faiss'"):
        build_store("faiss")


# --- search ----------------------------------------------------------------------------------


def indexed(lance: LanceStore, embedder: HashingEmbedder) -> None:
    texts = {
        "pub#0": ("all",),
        "secret#0": (INSIDER,),
        "team#0": ("eng@acme.test", INSIDER),
    }
    records = []
    for vector_id, access in texts.items():
        text = f"incident review for the payment outage ({vector_id})"
        vector = embedder.embed([text])[0]
        records.append(record(vector_id, vector, access, source="notion"))
    records.append(record("other#0", embedder.embed(["lunch menu on friday"])[0]))
    lance.ensure_dimension(embedder.dimension)
    lance.upsert(records)


def test_search_respects_access_and_source(lance):
    embedder = HashingEmbedder()
    indexed(lance, embedder)
    anonymous = search("payment outage review", embedder, lance, top_k=10)
    assert {h.doc_id for h in anonymous} == {"pub", "other"}
    mine = search("payment outage review", embedder, lance, top_k=3, as_user=" Ana@ACME.test ")
    assert {"secret", "team"} <= {h.doc_id for h in mine} and mine[0].doc_id != "other"
    notion = search("payment outage", embedder, lance, source="notion", as_user=OUTSIDER)
    assert [h.chunk_id for h in notion] == ["pub#0"]
    assert len(search("payment", embedder, lance, top_k=1, as_user=INSIDER)) == 1
    with pytest.raises(ValueError, match="empty"):
        search("  ", embedder, lance)


class LeakyStore:
    """A vector-only store whose filter is broken: it returns every match, readable or not,
    and the private chunk next to a public one."""

    name = "leaky"

    def query(self, vector, top_k, filter):
        return [
            Match("private#0", 0.99, {"access": [INSIDER], "source": "slack"}),
            Match("no-access#0", 0.98, {"source": "slack"}),
            Match("public#0", 0.5, {"access": ["all"], "source": "slack", "text": "hello"}),
            Match("other-source#0", 0.4, {"access": ["all"], "source": "jira"}),
        ][:top_k]

    def fetch_metadata(self, ids):
        neighbour = {"access": [INSIDER], "source": "slack", "doc_id": "public", "text": "secret"}
        return {"public#1": neighbour} if "public#1" in ids else {}


def test_search_post_filters_what_a_store_lets_through():
    embedder = HashingEmbedder(dimension=8)
    # Over-fetching lets the post-filter still fill top_k.
    assert [h.doc_id for h in search("q", embedder, LeakyStore(), top_k=2)] == [
        "public", "other-source"
    ]
    assert [h.doc_id for h in search("q", embedder, LeakyStore(), top_k=5, as_user=INSIDER)] == [
        "private", "public", "other-source"
    ]
    (public,) = search("q", embedder, LeakyStore(), source="slack", as_user=OUTSIDER)
    assert public.doc_id == "public" and public.snippet == "hello"  # not its private neighbour
    mine = search("q", embedder, LeakyStore(), source="slack", as_user=INSIDER)
    assert mine[1].snippet == "hello secret"


def test_search_filter_normalizes_identities():
    assert SearchFilter([" Ana@Acme.TEST", ""]).access == ["all", INSIDER]
    assert SearchFilter([INSIDER]).allows({"access": "all"})
    assert not SearchFilter([INSIDER]).allows({"access": []})


# --- PineconeStore against the sandbox emulator ----------------------------------------------

DIM = 1536


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(pinecone_dimension=DIM) as sb:
        yield sb


@pytest.fixture
def pine(sandbox) -> PineconeStore:
    sandbox.pinecone.reset(DIM)
    sandbox.knobs.reset()
    sandbox.knobs.latency_ms = 0
    return PineconeStore(SANDBOX_PINECONE_KEY, sandbox.pinecone_host, namespace="test")


def big_records(n: int, text_bytes: int = 5000, seed: int = 0) -> list[VectorRecord]:
    rng = np.random.default_rng(seed)
    return [record(f"doc{i}#0", unit(rng, DIM), text="é" * (text_bytes // 2))
            for i in range(n)]


def test_pinecone_upserts_in_batches_under_the_request_limits(pine, sandbox):
    records = big_records(600)  # ~11 KB each: a single request would be ~6.7 MB
    naive = pinecone.Pinecone(api_key=SANDBOX_PINECONE_KEY).Index(host=sandbox.pinecone_host)
    payload = [{"id": r.id, "values": r.values.tolist(), "metadata": r.metadata} for r in records]
    with pytest.raises(pinecone.errors.ApiError, match="exceeds the maximum supported size"):
        naive.upsert(vectors=payload, namespace="test")
    sandbox.pinecone.reset(DIM)
    requests = pine.upsert(records)
    upserts = [n for route, n in sandbox.pinecone.request_log if route == "upsert"]
    assert requests == len(upserts) >= 4 and sum(upserts) == 600
    assert pine.count() == 600 and len(pine.ids()) == 600  # ids() pages through 100 at a time
    stored = sandbox.pinecone.vectors("test")["doc7#0"]
    np.testing.assert_allclose(stored[0], records[7].values, rtol=1e-6)
    assert stored[1]["text"] == records[7].metadata["text"]


def test_pinecone_batches_by_count_too(sandbox):
    sandbox.pinecone.reset(DIM)
    store = PineconeStore(SANDBOX_PINECONE_KEY, sandbox.pinecone_host, max_batch_vectors=50)
    assert store.upsert(big_records(260, text_bytes=10)) == 6
    assert max(n for route, n in sandbox.pinecone.request_log if route == "upsert") == 50
    assert store.count() == 260  # the default namespace


def test_pinecone_upserts_in_parallel(sandbox):
    sandbox.pinecone.reset(DIM)
    store = PineconeStore(
        SANDBOX_PINECONE_KEY, sandbox.pinecone_host, max_workers=4, max_batch_vectors=10
    )
    in_flight, peak, lock = 0, 0, threading.Lock()
    real_upsert = store._index.upsert

    def counting_upsert(**kwargs):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return real_upsert(**kwargs)
        finally:
            with lock:
                in_flight -= 1

    store._index.upsert = counting_upsert
    sandbox.knobs.latency_ms = 200  # long enough for the workers to overlap
    assert store.upsert(big_records(80, text_bytes=10)) == 8
    sandbox.knobs.latency_ms = 0
    assert 2 <= peak <= 4, "several requests in flight, never more than max_workers"
    assert store.count() == 80


def test_pinecone_truncates_metadata_over_40kb(pine, sandbox):
    (rec,) = big_records(1, text_bytes=90_000)
    pine.upsert([rec])
    text = pine.fetch_metadata(["doc0#0"])["doc0#0"]["text"]
    assert 30_000 < len(text.encode()) < 40_960 and rec.metadata["text"].startswith(text)


def test_pinecone_delete_and_fetch(pine):
    pine.upsert(big_records(1200, text_bytes=10))
    assert pine.delete([f"doc{i}#0" for i in range(1100)] + ["never#0"]) == 2
    assert pine.count() == 100
    found = pine.fetch_metadata([f"doc{i}#0" for i in range(1090, 1200)])
    assert set(found) == {f"doc{i}#0" for i in range(1100, 1200)}


def test_pinecone_query_filters_by_access_and_source(pine):
    query, records = mixed_records(DIM)
    pine.upsert(records)
    outsider = pine.query(query, 50, SearchFilter([OUTSIDER]))
    assert outsider and all(m.metadata["access"] == ["all"] for m in outsider)
    insider = pine.query(query, 5, SearchFilter([INSIDER]))
    assert all(INSIDER in m.metadata["access"] for m in insider)
    jira = pine.query(query, 50, SearchFilter([INSIDER], source="jira"))
    assert jira and {m.metadata["source"] for m in jira} == {"jira"}
    assert_never_leaks(search_vector(pine, query), {OUTSIDER})


def search_vector(store, vector):
    class Fixed:
        dimension = DIM

        def embed(self, texts):
            return np.asarray([vector])

    return search("anything", Fixed(), store, top_k=20, as_user=OUTSIDER)


def test_pinecone_has_no_keyword_search_and_hybrid_runs_as_vector(pine):
    query, records = mixed_records(DIM)
    pine.upsert(records)
    with pytest.raises(KeywordSearchUnavailable, match="has no keyword .* mode='vector'"):
        pine.keyword_query("anything", 5, SearchFilter([]))
    with pytest.raises(KeywordSearchUnavailable, match=pine.name):
        search("anything", HashingEmbedder(dimension=DIM), pine, mode="keyword")
    hybrid = search_vector(pine, query)
    assert [h.doc_id for h in hybrid] == [
        m.metadata["doc_id"] for m in pine.query(query, 20, SearchFilter([OUTSIDER]))
    ]


def test_pinecone_dimension_mismatch(pine):
    pine.ensure_dimension(DIM)
    with pytest.raises(StoreDimensionError, match=f"has dimension {DIM} but embedder produces 384"):
        pine.ensure_dimension(384)


def test_pinecone_bad_key_fails_fast_and_names_host_not_key(sandbox):
    sandbox.knobs.reset()
    store = PineconeStore("pcsk-wrong-secret", sandbox.pinecone_host, namespace="team-a")
    with pytest.raises(PineconeAuthError) as caught:
        store.ensure_dimension(DIM)
    message = str(caught.value)
    assert sandbox.pinecone_host in message and "'team-a'" in message and "401" in message
    assert "pcsk-wrong-secret" not in message
    assert sandbox.knobs.calls["describe_index_stats"] == 1 and store.retries == 0


def test_pinecone_bad_request_is_not_retried(pine, sandbox):
    with pytest.raises(PineconePermanentError, match="upsert: HTTP 400: .*exceeds the limit"):
        pine.upsert([record("x" * 600, unit(np.random.default_rng(0), DIM))])  # id too long
    assert sandbox.knobs.calls["upsert"] == 1 and pine.retries == 0


@pytest.mark.parametrize("status", ["404", "410", "422"])
def test_pinecone_answers_that_will_not_change_are_not_retried(pine, sandbox, status):
    sandbox.knobs.inject("describe_index_stats", status, count=1)  # a retry would succeed
    with pytest.raises(PineconePermanentError, match=f"describe_index_stats: HTTP {status}"):
        pine.count()
    assert pine.retries == 0


def test_pinecone_429_is_waited_out(pine, sandbox):
    sandbox.knobs.inject("upsert", "429", count=1, retry_after=1)
    started = time.monotonic()
    pine.upsert(big_records(3, text_bytes=10))
    assert time.monotonic() - started >= 0.9
    assert sandbox.knobs.count_429["upsert"] == 1 and pine.count() == 3


@pytest.fixture
def fast_backoff(monkeypatch) -> list[float]:
    """No real sleeping between retries, ours (recorded) and the SDK's own."""
    from pinecone._internal import http_client

    waits: list[float] = []
    monkeypatch.setattr(resilience, "_sleep", waits.append)
    monkeypatch.setattr(http_client, "_retry_sleep", lambda seconds: None)
    return waits


def test_pinecone_server_errors_retried_until_they_pass(pine, sandbox, fast_backoff):
    sandbox.knobs.inject("upsert", "503", count=6)  # more than the SDK's own retries absorb
    pine.upsert(big_records(2, text_bytes=10))
    assert pine.count() == 2 and pine.retries >= 1


def test_pinecone_persistent_server_errors_give_up_clearly(sandbox, fast_backoff):
    sandbox.knobs.reset()
    store = PineconeStore(SANDBOX_PINECONE_KEY, sandbox.pinecone_host, max_attempts=3)
    sandbox.knobs.inject("query", "500", count=100)
    with pytest.raises(StoreError, match="query: failed after 3 attempts: HTTP 500") as caught:
        store.query(np.ones(DIM), 3, SearchFilter(["all"]))
    assert store.retries == 2 and not isinstance(caught.value, PermanentError)


@pytest.mark.parametrize("kind", ["malformed", "html"])
def test_pinecone_malformed_answers_are_retried_then_succeed(pine, sandbox, fast_backoff, kind):
    sandbox.knobs.inject("describe_index_stats", kind, count=2)
    assert pine.count() == 0
    assert pine.retries == 2 and sandbox.knobs.calls["describe_index_stats"] == 3


def test_pinecone_malformed_answers_forever_fail_naming_the_host(pine, sandbox, fast_backoff):
    sandbox.knobs.inject("describe_index_stats", "html", count=100)
    with pytest.raises(PineconePermanentError) as caught:
        pine.count()
    message = str(caught.value)
    assert sandbox.pinecone_host in message and "'test': describe_index_stats" in message
    assert "malformed answer after 3 attempts" in message
    assert sandbox.knobs.calls["describe_index_stats"] == 3


def test_pinecone_update_metadata_patches_rewrites_and_skips(pine, sandbox):
    rng = np.random.default_rng(5)
    vectors = {name: unit(rng, DIM) for name in ("shared", "lost", "same")}
    both = (READER_A, READER_B)
    pine.upsert([
        record("shared#0", vectors["shared"], access=both, title="Old", tags=["t"]),
        record("lost#0", vectors["lost"], access=both, title="Old", tags=["t"]),
        record("same#0", vectors["same"], access=(READER_A,), title="New", tags=["t"]),
    ])
    before = pine.query(vectors["shared"], 1, SearchFilter([READER_B]))[0]
    sent, real_update = [], pine._index.update
    pine._index.update = lambda **kwargs: sent.append(kwargs) or real_update(**kwargs)
    told = []
    requests = pine.update_metadata(
        [narrowed("shared#0", tags=["t"]), narrowed("lost#0"), narrowed("same#0", tags=["t"]),
         narrowed("ghost#0")],
        told.append,
    )
    assert requests == 3 and told == [["same#0"], ["shared#0"], ["lost#0"]]
    assert sandbox.knobs.calls["fetch"] == 1 and sandbox.knobs.calls["update"] == 1
    assert sandbox.knobs.calls["upsert"] == 2  # the setup's, then lost#0 rewritten whole
    # Only what changed travels: the text stays where it is.
    assert [set(s["set_metadata"]) for s in sent] == [{"access", "title"}]
    stored = sandbox.pinecone.vectors("test")
    assert set(stored) == {"shared#0", "lost#0", "same#0"}  # ghost#0 not created
    assert stored["shared#0"][1] == narrowed("shared#0", tags=["t"])[1]
    assert stored["lost#0"][1] == narrowed("lost#0")[1]  # tags gone
    for name, vector in vectors.items():
        np.testing.assert_array_equal(np.asarray(stored[f"{name}#0"][0], np.float32), vector)
    assert pine.query(vectors["shared"], 3, SearchFilter([READER_B])) == []
    after = pine.query(vectors["shared"], 1, SearchFilter([READER_A]))[0]
    assert after.id == "shared#0" and after.score == pytest.approx(before.score, abs=1e-6)
    assert after.metadata["access"] == [READER_A]


def test_pinecone_update_metadata_in_parallel_and_retried(pine, sandbox, fast_backoff):
    records = big_records(120, text_bytes=10)
    pine.upsert(records)
    sandbox.knobs.inject("update", "malformed", count=2)  # the SDK does not retry these; we do
    told = []
    requests = pine.update_metadata([narrowed(r.id) for r in records], told.append)
    assert requests == 2 + 120  # fetches of 100 ids, then one update per id
    assert sorted(i for ids in told for i in ids) == sorted(r.id for r in records)
    assert all(len(ids) == 1 for ids in told)
    assert pine.retries == 2 and sandbox.knobs.calls["update"] == 122
    found = pine.fetch_metadata([r.id for r in records])
    assert all(m["access"] == [READER_A] and m["title"] == "New" for m in found.values())
    assert pine.update_metadata([]) == 0


def test_pinecone_update_metadata_bounds_requests_in_flight(sandbox):
    sandbox.pinecone.reset(DIM)
    store = PineconeStore(SANDBOX_PINECONE_KEY, sandbox.pinecone_host, max_workers=3)
    records = big_records(12, text_bytes=10)
    store.upsert(records)
    in_flight, peak, lock = 0, 0, threading.Lock()
    real_update = store._index.update

    def counting_update(**kwargs):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return real_update(**kwargs)
        finally:
            with lock:
                in_flight -= 1

    store._index.update = counting_update
    sandbox.knobs.latency_ms = 100
    assert store.update_metadata([narrowed(r.id) for r in records]) == 1 + 12
    sandbox.knobs.latency_ms = 0
    assert 2 <= peak <= 3, "several updates in flight, never more than max_workers"
