"""Hybrid search over LanceDB with document-level results: exact keys and names come first,
one place per document, and private documents stay private in every mode."""

from __future__ import annotations

import logging

import pytest

from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.search import MAX_TOP_K, SEARCH_MODES, SearchHit, search
from sync_pipelines.index.stores.base import KeywordSearchUnavailable, SearchFilter, VectorRecord
from sync_pipelines.index.stores.lance import LanceStore

DIM = 64  # small on purpose: hashed words collide, so vectors blur as a fuzzy model's do
MEMBER = "priya@acme.test"
OUTSIDER = "eve@outside.test"
EPOCH = 1_780_000_000
NAME = "Priya Raman"


def chunk_records(embedder, doc_id, chunks, access=("all",), source="slack", title=None):
    """One document's chunks as the updater stores them: `doc#n` ids and the doc's fields."""
    title = title or f"title of {doc_id}"
    texts = [f"{title}\n\n{text}" for text in chunks]
    vectors = embedder.embed(texts)
    return [
        VectorRecord(
            f"{doc_id}#{n}",
            vectors[n],
            {
                "doc_id": doc_id,
                "source": source,
                "title": title,
                "url": f"https://example.test/{doc_id}",
                "timestamp_epoch": EPOCH + n,
                "access": list(access),
                "chunk_n": n,
                "text": text,
            },
        )
        for n, text in enumerate(texts)
    ]


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(dimension=DIM)


@pytest.fixture
def store(tmp_path, embedder) -> LanceStore:
    """Issues that share words with SUBS-121, short messages mentioning it, a long transcript naming one person in every
    chunk, short notes naming her too, messages with her first name only, and private
    documents with all of these words."""
    lance = LanceStore(tmp_path / "vectors")
    lance.ensure_dimension(DIM)
    records = []
    records += chunk_records(
        embedder,
        "jira:SUBS-121",
        ["Move recurring subscriptions to the new payment provider."],
        source="jira",
        title="SUBS-121 payment provider cutover",
    )
    for key in ("SUBS-12", "SUBS-211", "SUBS-120"):
        records += chunk_records(
            embedder,
            f"jira:{key}",
            [f"{key} subscriptions billing: 121 customers moved to the new payment provider."],
            source="jira",
            title=f"{key} subscriptions billing",
        )
    records += chunk_records(
        embedder,
        "slack:billing",
        ["the subs migration for 121 accounts and the payment provider plan"],
    )
    for n in range(3):  # short, so BM25 ranks them above the issue: its title must count
        records += chunk_records(embedder, f"slack:mention{n}", ["SUBS-121 done"], title="#ops")
    transcript = [
        f"{NAME} walked through item {n} of the migration plan and the customer list {n}."
        for n in range(60)
    ]
    records += chunk_records(embedder, "fireflies:weekly", transcript, source="fireflies")
    for n in range(2):
        records += chunk_records(embedder, f"slack:note{n}", [f"{NAME} owns follow-up {n}."])
    for n in range(3):
        records += chunk_records(embedder, f"slack:ask{n}", [f"ask Priya about invoice {n}"])
    records += chunk_records(embedder, "slack:lunch", ["lunch menu on friday"])
    for n in range(3):
        records += chunk_records(
            embedder,
            f"slack:private{n}",
            [f"SUBS-121 {NAME} private salary review {n}"] * 3,
            access=(MEMBER,),
        )
    lance.upsert(records)
    return lance


def doc_ids(hits: list[SearchHit]) -> list[str]:
    return [hit.doc_id for hit in hits]


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_an_exact_issue_key_returns_its_issue_first(store, embedder, mode):
    by_words = store.keyword_query("SUBS-121", 5, SearchFilter([]))
    assert by_words[0].metadata["doc_id"].startswith("slack:mention")  # mentions win on BM25
    hits = search("SUBS-121", embedder, store, top_k=5, mode=mode)
    assert hits[0].doc_id == "jira:SUBS-121"
    assert "payment provider" in hits[0].snippet and hits[0].url.endswith("jira:SUBS-121")
    assert (hits[0].source, hits[0].title) == ("jira", "SUBS-121 payment provider cutover")


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_a_name_returns_distinct_documents_the_long_transcript_once(store, embedder, mode):
    # The first 20 chunks ranked hold 3 documents: the transcript's 60 chunks crowd them.
    first_fetch = store.keyword_query(NAME, 20, SearchFilter(["all"]))
    assert len({m.metadata["doc_id"] for m in first_fetch}) == 3
    hits = search(NAME, embedder, store, top_k=5, mode=mode)
    ids = doc_ids(hits)
    assert len(set(ids)) == 5 and ids.count("fireflies:weekly") == 1, ids
    assert set(ids[:3]) == {"fireflies:weekly", "slack:note0", "slack:note1"}
    assert set(ids[3:]) < {f"slack:ask{n}" for n in range(3)}  # found past the first fetch
    assert all("Priya" in hit.snippet for hit in hits)


def test_a_hit_carries_its_document_and_neighbouring_text(store, embedder):
    (hit,) = search("item 30 of the migration plan", embedder, store, top_k=1, mode="keyword")
    assert hit.doc_id == "fireflies:weekly" and hit.chunk_id == "fireflies:weekly#30"
    assert hit.date is not None and int(hit.date.timestamp()) == EPOCH + 30
    assert "item 30 " in hit.snippet and ("item 29 " in hit.snippet or "item 31 " in hit.snippet)
    assert "title of fireflies:weekly" not in hit.snippet  # the per-chunk header is dropped
    assert len(hit.snippet) <= 330


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_private_documents_reach_members_only_in_every_mode(store, embedder, mode):
    query = f"SUBS-121 {NAME} private salary review"
    for who in (None, OUTSIDER):
        hits = search(query, embedder, store, top_k=20, as_user=who, mode=mode)
        assert hits and not [h for h in hits if h.doc_id.startswith("slack:private")]
    member = search(query, embedder, store, top_k=3, as_user=MEMBER.upper(), mode=mode)
    assert {h.doc_id for h in member} == {f"slack:private{n}" for n in range(3)}


class IgnoresFilter(LanceStore):
    """A LanceStore whose access filter is broken: every chunk of every reader comes back,
    neighbours included."""

    def query(self, vector, top_k, filter):
        return super().query(vector, top_k, SearchFilter([MEMBER], source=filter.source))

    def keyword_query(self, text, top_k, filter):
        return super().keyword_query(text, top_k, SearchFilter([MEMBER], source=filter.source))


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_search_drops_what_a_leaky_store_lets_through(store, embedder, mode):
    leaky = IgnoresFilter(store.path)
    query = f"SUBS-121 {NAME} private salary review"
    assert any(
        m.metadata["doc_id"].startswith("slack:private")
        for m in leaky.keyword_query(query, 20, SearchFilter([OUTSIDER]))
    ), "the store does leak"
    hits = search(query, embedder, leaky, top_k=20, as_user=OUTSIDER, mode=mode)
    assert hits and all(h.metadata["access"] == ["all"] for h in hits)
    assert "salary" not in " ".join(h.snippet for h in hits)


def test_top_k_bounds_the_documents(store, embedder):
    assert len(search(NAME, embedder, store, top_k=2)) == 2
    everything = search("the", embedder, store, top_k=MAX_TOP_K)
    public = {i.split("#")[0] for i in store.ids() if "private" not in i}
    assert set(doc_ids(everything)) == public and len(everything) == len(public)
    for top_k in (0, MAX_TOP_K + 1):
        with pytest.raises(ValueError, match=f"top_k must be between 1 and {MAX_TOP_K}"):
            search(NAME, embedder, store, top_k=top_k)


def test_an_empty_query_or_an_unknown_mode_is_refused(store, embedder):
    for query in ("", "  \n"):
        with pytest.raises(ValueError, match="search query is empty"):
            search(query, embedder, store)
    with pytest.raises(ValueError, match="mode must be one of vector, keyword, hybrid"):
        search(NAME, embedder, store, mode="fuzzy")


def test_a_store_without_keyword_search_runs_hybrid_as_vector(store, embedder, caplog):
    class VectorOnly:
        name = "vector-only"

        def query(self, vector, top_k, filter):
            return store.query(vector, top_k, filter)

        def fetch_metadata(self, ids):
            return store.fetch_metadata(ids)

    with caplog.at_level(logging.WARNING, logger="sync_pipelines.index.search"):
        hybrid = search(NAME, embedder, VectorOnly(), top_k=5)
    assert doc_ids(hybrid) == doc_ids(search(NAME, embedder, store, top_k=5, mode="vector"))
    assert "vector-only has no keyword search" in caplog.text
    with pytest.raises(KeywordSearchUnavailable, match="vector-only has no keyword"):
        search(NAME, embedder, VectorOnly(), mode="keyword")
