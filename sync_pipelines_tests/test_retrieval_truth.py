"""The retrieval evaluation's ground truth (sandbox retrieval_truth) means what it says: the
same company gives the same queries, and every answer it names is a document the real sources
write, readable by the query's user. Without this the evaluation could silently measure
nothing (ids in a format no source writes, answers nobody may read)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from dagster import instance_for_test
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.retrieval_truth import (
    CALL_PARAPHRASES,
    CATEGORIES,
    SOURCES,
    SUMMARY_PARAPHRASES,
    retrieval_queries,
)
from sync_pipelines_sandbox.server import Sandbox

BENCH = Path(__file__).resolve().parents[1] / "bench" / "retrieval_eval.py"


def bench_module():
    """bench/retrieval_eval.py, whose sync and judging the evaluation itself uses."""
    if "retrieval_eval" not in sys.modules:
        spec = importlib.util.spec_from_file_location("retrieval_eval", BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["retrieval_eval"]


def small_company() -> Company:
    return Company.generate(seed=11, messages=300, days=2)


def test_same_company_same_queries_and_every_category_is_there():
    first = retrieval_queries(small_company())
    again = retrieval_queries(small_company())
    assert first == again
    counts = Counter(q.category for q in first)
    assert set(counts) == set(CATEGORIES)
    assert all(q.relevant for q in first)
    assert all(q.relevant == tuple(dict.fromkeys(q.relevant)) for q in first)


def test_bench_sized_company_has_over_a_hundred_queries():
    queries = retrieval_queries(Company.generate(seed=7, messages=3000, days=5))
    counts = Counter(q.category for q in queries)
    assert len(queries) >= 100
    assert counts["exact_key"] >= 25 and counts["paraphrase"] >= 30, counts


STOP_WORDS = {"the", "a", "an", "of", "in", "to", "for", "with", "on", "up", "their", "them"}


def words(text: str) -> set[str]:
    """Lower-cased words as the hashing embedder splits them, plural 's' dropped."""
    return {w.removesuffix("s") for w in re.findall(r"\w+", text.lower())} - STOP_WORDS


def test_paraphrases_share_no_distinctive_word_with_what_they_paraphrase():
    for value, phrasings in CALL_PARAPHRASES.items():
        for phrasing in phrasings:
            assert not words(value) & words(phrasing), (value, phrasing)
    for pattern, phrasings in SUMMARY_PARAPHRASES.items():
        fixed = pattern.replace(".+", " ")
        for phrasing in phrasings:
            assert not words(fixed) & words(phrasing), (pattern, phrasing)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A small company's documents as the real sources write them (one range run each)."""
    bench = bench_module()
    company = small_company()
    work = tmp_path_factory.mktemp("retrieval-truth")
    with (
        Sandbox(company=company) as sandbox,
        instance_for_test() as instance,
        pytest.MonkeyPatch.context() as env,
    ):
        for name, value in bench.connections_env(
            sandbox, SOURCES, work / "connections.yaml"
        ).items():
            env.setenv(name, value)
        bench.sync_sources(company, sandbox, instance, work, SOURCES)
    return bench, company, bench.synced_documents(work / "documents")


@pytest.mark.integration
def test_every_answer_is_a_synced_document_its_user_may_read(synced):
    bench, company, docs = synced
    queries = retrieval_queries(company)
    missing = sorted({d for q in queries for d in q.relevant} - set(docs))
    assert not missing, f"{len(missing)} answers no source wrote, e.g. {missing[:5]}"
    judged, dropped = bench.judge(queries, docs)
    assert dropped["queries_without_readable_answer"] == 0, [
        q for q in queries if not any(bench.readable(docs[d], q.as_user) for d in q.relevant)
    ]
    assert len(judged) == len(queries)
    for q in queries:
        if q.category == "exact_key":
            assert docs[q.relevant[0]].metadata["issue_key"] == q.query
        if q.category == "person":
            assert all(q.query in docs[d].title for d in q.relevant), q.query


@pytest.mark.integration
def test_a_call_paraphrase_lists_every_document_stating_its_value(synced):
    """Its answers state the planted value, and no other synced document does (else an
    embedder finding that one would be marked wrong)."""
    _, company, docs = synced
    value_of = {p: v for v, phrasings in CALL_PARAPHRASES.items() for p in phrasings}
    asked = [q for q in retrieval_queries(company) if q.query in value_of]
    assert asked
    for q in asked:
        value = value_of[q.query].lower()
        stating = {d for d, doc in docs.items() if value in doc.text.lower()}
        assert stating == set(q.relevant), q.query
