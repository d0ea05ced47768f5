"""The pieces of document-level search: grouping, reciprocal rank fusion and snippets."""

from __future__ import annotations

import pytest

from sync_pipelines.index.fusion import (
    RRF_K,
    best_per_document,
    document_of,
    reciprocal_rank_fusion,
    title_ranking,
)
from sync_pipelines.index.snippets import snippet
from sync_pipelines.index.stores.base import Match


def match(vector_id: str, score: float = 1.0, **metadata) -> Match:
    return Match(vector_id, score, metadata)


def test_a_document_takes_the_place_of_its_best_chunk():
    ranked = best_per_document(
        [match("long#4", 0.9), match("long#7", 0.8), match("short#0", 0.7), match("long#1", 0.6)]
    )
    assert [(d.doc_id, d.best.id, d.score) for d in ranked] == [
        ("long", "long#4", 0.9),
        ("short", "short#0", 0.7),
    ]
    assert document_of(match("a#b#3", doc_id="jira:X")) == "jira:X"
    assert document_of(match("slack:c1:171.2#12")) == "slack:c1:171.2"


def test_fusion_adds_reciprocal_ranks_not_scores():
    keyword = best_per_document([match("key#0", 40.0), match("both#0", 30.0)])
    vector = best_per_document(
        [match("fuzzy#0", 0.9), match("both#2", 0.8), match("other#0", 0.5), match("key#1", 0.1)]
    )
    fused = reciprocal_rank_fusion([keyword, vector])
    assert [d.doc_id for d in fused] == ["both", "key", "fuzzy", "other"]
    assert fused[0].score == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 2))
    assert fused[1].score == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 4))
    # The chunk shown is the one from the ranking that placed the document highest.
    assert fused[0].best.id == "both#0" and fused[1].best.id == "key#0"


def test_fusion_breaks_ties_by_best_rank_then_id():
    fused = reciprocal_rank_fusion(
        [best_per_document([match("b#0"), match("a#0")]), best_per_document([match("a#0")])]
    )
    assert [d.doc_id for d in fused] == ["a", "b"]
    one_each = reciprocal_rank_fusion(
        [best_per_document([match("y#0")]), best_per_document([match("x#0")])]
    )
    assert [d.doc_id for d in one_each] == ["x", "y"]


def test_weights_scale_a_rankings_share():
    plain = best_per_document([match("a#0"), match("b#0")])
    titled = best_per_document([match("b#0")])
    fused = reciprocal_rank_fusion([plain, titled], weights=[1.0, 2.0])
    assert [d.doc_id for d in fused] == ["b", "a"]
    assert fused[0].score == pytest.approx(1 / (RRF_K + 2) + 2 / (RRF_K + 1))
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([plain, titled], weights=[1.0])


def test_title_ranking_holds_documents_titled_by_every_query_word():
    candidates = best_per_document(
        [
            match("chat#0", title="#billing"),
            match("near#0", title="SUBS-12: 121 customers"),
            match("long#0", title="Follow-up on SUBS-121 and SUBS-7: the billing cutover"),
            match("issue#0", title="SUBS-121: Move subscriptions"),
            match("untitled#0"),
        ]
    )
    ranked = title_ranking(candidates, "subs-121")
    # The phrase before scattered words; the shorter title first.
    assert [d.doc_id for d in ranked] == ["issue", "long", "near"]
    assert title_ranking(candidates, " ?! ") == []
    assert [d.doc_id for d in title_ranking(candidates, "Billing")] == ["chat", "long"]


def test_snippet_joins_neighbours_once_without_their_headers():
    before = "Weekly sync\n\nwe reviewed the roadmap and then the budget for next quarter"
    best = "Weekly sync\n\nthe budget for next quarter was approved by Priya Raman today"
    after = "Weekly sync\n\napproved by Priya Raman today; next the hiring plan"
    text = snippet(best, before, after, title="Weekly sync", query="priya", max_chars=500)
    assert text == (
        "we reviewed the roadmap and then the budget for next quarter was approved by "
        "Priya Raman today; next the hiring plan"
    )


def test_snippet_drops_a_shortened_title_header_but_keeps_a_paragraph():
    assert snippet("Weekly\n\nbody", title="Weekly sync of the team") == "body"
    assert snippet("First paragraph\n\nsecond", title="Other") == "First paragraph second"


def test_a_long_snippet_is_cut_around_the_first_query_word_in_the_best_chunk():
    before = " ".join(f"early{n}" for n in range(60))
    best = " ".join(f"word{n}" for n in range(40)) + " Priya said yes " + "tail " * 40
    text = snippet(best, before, None, query="what did Priya say", max_chars=120)
    assert text.startswith("…") and text.endswith("…") and "Priya said yes" in text
    assert len(text) <= 122 and "early" not in text
    assert text.index("Priya") < len(text) // 2  # a quarter of the window leads in
    plain = snippet("no query word here " * 20, query="absent", max_chars=40)
    assert plain.startswith("no query word") and plain.endswith("…")


def test_a_snippet_of_nothing_is_empty():
    assert snippet("", None, None) == ""
    assert snippet("only text", None, "", title=None) == "only text"
