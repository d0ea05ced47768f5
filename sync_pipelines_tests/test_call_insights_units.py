"""call_insights' pieces on their own: the schema and prompt, splitting long transcripts and
merging the parts' answers, cache keys, the table and its queries, the CLI."""

from __future__ import annotations

import json
import random

import pytest
from sync_pipelines_sandbox import insight_terms
from sync_pipelines_sandbox.insight_terms import customer_lines, facts_in

from sync_pipelines import clock
from sync_pipelines.cli import main
from sync_pipelines.documents import Document
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.insights import records
from sync_pipelines.insights.cache import InsightCache, cache_key
from sync_pipelines.insights.schema import (
    KINDS,
    PROMPT_VERSION,
    RESPONSE_FORMAT,
    SCHEMA,
    SYSTEM_PROMPT,
    AnswerError,
    Extraction,
    Insight,
    messages,
    parse_answer,
)
from sync_pipelines.insights.split import merge, split_transcript
from sync_pipelines.insights.table import InsightTable, Query, select, since_epoch

BYTES = TokenCounter()  # the offline counter: one token per UTF-8 byte


# ------------------------------------------------------------------ schema and prompt
def _objects(schema: dict):
    if schema.get("type") == "object":
        yield schema
    for sub in schema.get("properties", {}).values():
        yield from _objects(sub)
    if "items" in schema:
        yield from _objects(schema["items"])


def test_schema_is_strict_mode_compatible():
    assert RESPONSE_FORMAT["type"] == "json_schema"
    assert RESPONSE_FORMAT["json_schema"]["strict"] is True
    for obj in _objects(SCHEMA):
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])
    item = SCHEMA["properties"]["insights"]["items"]["properties"]
    assert item["kind"]["enum"] == list(KINDS)
    assert set(KINDS) == {*insight_terms.KINDS, "action_item"}


def test_prompt_names_no_planted_value_and_frames_parts():
    lowered = SYSTEM_PROMPT.lower()
    for values in insight_terms.VALUES.values():
        assert not any(v.lower() in lowered for v in values)
    chat = messages("Globex call", "hello", part=2, parts=3)
    assert [m["role"] for m in chat] == ["system", "user"]
    assert "part 2 of 3" in chat[1]["content"] and chat[1]["content"].endswith("hello")
    assert "part" not in messages("Globex call", "hello")[1]["content"]


def test_parse_answer_keeps_valid_insights_and_rejects_other_shapes():
    answer = {
        "insights": [
            {"kind": "feature", "value": " SSO ", "quote": "Do you support SSO?", "owner": "x"},
            {"kind": "action_item", "value": "send notes", "quote": "q", "owner": "Ana"},
            {"kind": "rumour", "value": "z", "quote": "q", "owner": None},
            {"kind": "feature", "value": "", "quote": "q", "owner": None},
        ],
        "sentiment": "negative",
        "sentiment_quote": "It is slow.",
    }
    parsed = parse_answer(json.dumps(answer), weight=10)
    assert parsed.insights == (
        Insight("feature", "SSO", "Do you support SSO?", None),
        Insight("action_item", "send notes", "q", "Ana"),
    )
    assert (parsed.sentiment, parsed.sentiment_quote, parsed.weight) == (
        "negative",
        "It is slow.",
        10,
    )
    assert Extraction.from_json(parsed.to_json()) == parsed
    for bad in ('{"insights": [', "[]", '{"insights": []}', '{"insights": [], "sentiment": "meh"}'):
        with pytest.raises(AnswerError):
            parse_answer(bad)
    with pytest.raises(AnswerError):
        parse_answer(None)


# ------------------------------------------------------------------ split and merge
def _transcript(rng: random.Random, turns: int) -> tuple[str, list]:
    """Chatter with planted facts spread through it, one turn per line."""
    planted = customer_lines(rng, ["Ana Diaz", "Bo Li"], count=8)
    lines = [f"Speaker {n % 3}: Okay, so the next point is item {n}. Right." for n in range(turns)]
    for fact in planted:
        at = rng.randrange(len(lines))
        lines[at] = lines[at] + " " + fact.quote  # inside a turn, not on its own line
    return "\n".join(lines), planted


def _keys(facts) -> set:
    return {(f.kind, f.value) for f in facts}


@pytest.mark.parametrize("seed", range(6))
def test_split_keeps_every_fact_whole_at_any_budget(seed):
    rng = random.Random(seed)
    text, planted = _transcript(rng, 120)
    for budget in (100, 200, 997):
        parts = split_transcript(text, budget, BYTES)
        assert len(parts) > 1 and all(BYTES.count(p) <= budget for p in parts)
        found = [f for p in parts for f in facts_in(p)]
        assert _keys(planted) <= _keys(found)
        # nothing lost or duplicated: the words of the parts are the words of the text
        assert " ".join(" ".join(parts).split()).count("Okay") == text.count("Okay")


def test_a_long_turn_is_split_between_sentences_with_its_speaker():
    turn = "Riley Chen: " + " ".join(f"Sentence number {n} is here." for n in range(40))
    parts = split_transcript(turn, 120, BYTES)
    assert len(parts) > 3
    assert all(p.startswith("Riley Chen: Sentence number") for p in parts)
    assert all(BYTES.count(p) <= 120 for p in parts)


def test_one_sentence_longer_than_a_part_is_cut_between_words():
    parts = split_transcript("word " * 200, 50, BYTES)
    assert all(BYTES.count(p) <= 50 for p in parts)
    assert " ".join(parts).split() == ["word"] * 200


def test_short_text_is_one_part_and_tiny_budgets_are_refused():
    assert split_transcript("hello", 100, BYTES) == ["hello"]
    with pytest.raises(ValueError):
        split_transcript("hello", 4, BYTES)


def test_merge_dedupes_by_kind_and_value_keeping_the_first_quote():
    first = Extraction(
        (Insight("feature", "SSO", "first quote"), Insight("action_item", "send", "q1")),
        "negative",
        "slow",
        weight=100,
    )
    second = Extraction(
        (
            Insight("feature", "sso ", "second quote"),
            Insight("action_item", "Send", "q2", "Ana"),
            Insight("competitor", "Initrode", "q3"),
        ),
        "neutral",
        "",
        weight=50,
    )
    merged = merge([first, second])
    assert merged.insights == (
        Insight("feature", "SSO", "first quote"),
        Insight("action_item", "send", "q1", "Ana"),
        Insight("competitor", "Initrode", "q3"),
    )
    assert (merged.sentiment, merged.sentiment_quote, merged.weight) == ("negative", "slow", 150)


@pytest.mark.parametrize(
    "votes, expected",
    [
        ([("neutral", 5), ("neutral", 9)], "neutral"),
        ([("positive", 5), ("neutral", 90)], "positive"),
        ([("positive", 5), ("negative", 9)], "negative"),
        ([("positive", 9), ("negative", 9)], "mixed"),
        ([("mixed", 9), ("positive", 3)], "mixed"),
    ],
)
def test_merged_sentiment_is_voted_by_part_size(votes, expected):
    parts = [Extraction((), s, f"{s} quote" if s != "neutral" else "", w) for s, w in votes]
    merged = merge(parts)
    assert merged.sentiment == expected
    assert (merged.sentiment_quote == "") == (expected == "neutral")


# ------------------------------------------------------------------ cache
def test_cache_keys_and_persistence(tmp_path):
    key = cache_key("text", "gpt-4o-mini", PROMPT_VERSION)
    assert key == cache_key("text", "gpt-4o-mini", PROMPT_VERSION)
    assert (
        len(
            {
                key,
                cache_key("text!", "gpt-4o-mini", PROMPT_VERSION),
                cache_key("text", "gpt-4o", PROMPT_VERSION),
                cache_key("text", "gpt-4o-mini", "other-version"),
            }
        )
        == 4
    )
    cache = InsightCache(tmp_path / "c.sqlite")
    answer = Extraction((Insight("feature", "SSO", "q"),), "positive", "yay", 7)
    cache.put(key, answer)
    cache.close()
    again = InsightCache(tmp_path / "c.sqlite")
    assert again.get(key) == answer and again.get("missing") is None and again.count() == 1


# ------------------------------------------------------------------ table and queries
def call(n: int, day_offset: float, access=("all",)) -> Document:
    at = clock.now_epoch() - day_offset * 86_400
    return Document(
        doc_id=f"calls:acme:{n}",
        source="calls",
        connection="acme",
        title=f"Call {n}",
        text="...",
        url=f"https://calls.test/{n}",
        author="Ana",
        created_at="",
        updated_at="",
        timestamp_epoch=at,
        access=tuple(access),
    )


def extraction(*insights: Insight, sentiment="neutral") -> Extraction:
    return Extraction(tuple(insights), sentiment, "")


def test_table_replaces_a_calls_rows_and_queries_them(tmp_path):
    table = InsightTable(tmp_path)
    old = call(1, 40)
    recent = call(2, 2, access=("ana@acme.test",))
    rows = records.rows(
        old,
        old.timestamp_epoch,
        extraction(Insight("feature", "SSO", "Do you support SSO?")),
        "m",
        "v",
        0,
    ) + records.rows(
        recent,
        recent.timestamp_epoch,
        extraction(
            Insight("feature", "SSO login", "q"),
            Insight("competitor", "Vandelay Cloud", "q2"),
            Insight("action_item", "send the deck", "q3", "Bo"),
            sentiment="negative",
        ),
        "m",
        "v",
        0,
    )
    frame = table.update(rows, [])
    assert len(frame) == 2 + 4  # each call's sentiment row too
    frame = table.read()
    assert list(select(frame, Query(feature="sso"))["doc_id"]) == [recent.doc_id, old.doc_id]
    month = Query(feature="SSO", since_epoch=since_epoch("30d"))
    assert list(select(frame, month)["value"]) == ["SSO login"]
    assert list(select(frame, Query(competitor="vandelay"))["value"]) == ["Vandelay Cloud"]
    action = select(frame, Query(kind="action_item")).iloc[0]
    assert (action["owner"], list(action["access"])) == ("Bo", ["ana@acme.test"])
    assert set(select(frame, Query(kind="sentiment"))["value"]) == {"neutral", "negative"}
    assert table.calls_in("calls:acme:", 0, clock.now_epoch() - 10 * 86_400) == {old.doc_id}
    # re-extracting a call replaces its rows; a deleted call's rows go
    frame = table.update(
        records.rows(old, old.timestamp_epoch, extraction(), "m", "v", 0),
        [old.doc_id, recent.doc_id],
    )
    assert list(frame["kind"]) == ["sentiment"]


def test_since_accepts_durations_and_dates():
    now = clock.now_epoch()
    assert since_epoch("12h") == pytest.approx(now - 12 * 3600)
    assert since_epoch("2w") == pytest.approx(now - 14 * 86_400)
    assert since_epoch("2026-01-02") == 1767312000.0
    with pytest.raises(ValueError, match="30d"):
        since_epoch("last tuesday")


def test_the_insights_document_carries_access_and_lives_in_its_own_namespace():
    source = call(3, 1, access=("ana@acme.test", "bo@acme.test"))
    found = extraction(
        Insight("objection", "high price", "My main concern is the high price."),
        Insight("action_item", "send the deck", "Action item: Bo will send the deck.", "Bo"),
    )
    doc = records.document(source, found, "gpt-4o-mini", PROMPT_VERSION)
    assert doc.doc_id == "call_insights:calls:acme:3" and doc.source == "call_insights"
    assert doc.access == source.access and doc.timestamp_epoch == source.timestamp_epoch
    assert "high price" in doc.text and "owner: Bo" in doc.text
    assert doc.metadata["objections"] == ["high price"]
    gone = records.document(source, extraction(), "m", "v")
    assert gone.doc_id == doc.doc_id and not hasattr(gone, "text")


# ------------------------------------------------------------------ CLI
def test_cli_queries_the_table(tmp_path, capsys):
    table = InsightTable(tmp_path)
    recent = call(5, 1)
    table.update(
        records.rows(
            recent,
            recent.timestamp_epoch,
            extraction(
                Insight("feature", "SSO", "Do you support SSO yet?"),
                Insight("competitor", "Initrode", "We're also evaluating Initrode."),
            ),
            "gpt-4o-mini",
            PROMPT_VERSION,
            0,
        ),
        [],
    )
    root = ["--root", str(tmp_path)]
    assert main(["insights", "--feature", "SSO", "--since", "30d", "--json", *root]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["value"], row["doc_id"], row["kind"]) == ("SSO", recent.doc_id, "feature")
    assert main(["insights", "--competitor", "initrode", *root]) == 0
    out = capsys.readouterr().out
    assert "Initrode" in out and "1 row(s)" in out
    assert main(["insights", "--kind", "objection", *root]) == 0
    assert "no insights match" in capsys.readouterr().out
    assert main(["insights", "--since", "soon", *root]) == 2
    assert "expected a duration" in capsys.readouterr().out
