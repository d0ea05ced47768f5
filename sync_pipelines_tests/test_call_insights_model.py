"""The chat model client and the extractor against the OpenAI emulator: recall of planted
facts (split transcripts too), the cache, and each fault's documented behaviour: bad JSON is
asked once more then fails uncached, a refusal is recorded uncached, a 429 is waited out, a
timeout is retried then ends in a clear error, a rejected key stops the batch."""

from __future__ import annotations

import random

import pytest
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.insight_terms import customer_lines
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.server import Sandbox

from sync_pipelines import resilience
from sync_pipelines.documents import Document
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.insights.cache import InsightCache
from sync_pipelines.insights.extract import Extractor
from sync_pipelines.insights.model import (
    ChatModel,
    ChatModelResource,
    InsightsModelAuthError,
    InsightsModelError,
)

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(company=Company.generate(messages=100)) as sb:
        yield sb


@pytest.fixture(autouse=True)
def fresh(sandbox, monkeypatch):
    sandbox.knobs.reset()
    sandbox.openai.clear_chat_faults()
    waits: list[float] = []
    monkeypatch.setattr(resilience, "_sleep", waits.append)
    yield waits
    sandbox.knobs.reset()
    sandbox.knobs.timeout_s = 30.0


def model(sandbox, **options) -> ChatModel:
    options.setdefault("max_retries", 2)
    return ChatModel(SANDBOX_OPENAI_KEY, MODEL, sandbox.openai_base_url, **options)


def call(n: int, turns: int = 30, seed: int | None = None) -> tuple[Document, list]:
    rng = random.Random(seed if seed is not None else n)
    facts = customer_lines(rng, ["Ana Diaz", "Bo Li"], count=6)
    lines = [f"Ana Diaz: Point {k} of call {n}, let's move on." for k in range(turns)]
    for fact in facts:
        lines.insert(rng.randrange(len(lines)), f"Jordan Blake: {fact.quote}")
    doc = Document(
        doc_id=f"calls:acme:c{n}",
        source="calls",
        connection="acme",
        title=f"Call {n}",
        text="\n".join(lines),
        url="",
        author="Ana Diaz",
        created_at="",
        updated_at="",
        timestamp_epoch=0.0,
    )
    return doc, facts


def extractor(sandbox, tmp_path, budget: int = 100_000, **options) -> Extractor:
    cache = InsightCache(tmp_path / "cache.sqlite")
    return Extractor(model(sandbox, **options), cache, TokenCounter(), budget, max_workers=3)


def found(outcome) -> set:
    return {(i.kind, i.value, i.owner) for i in outcome.extraction.insights}


def planted(facts) -> set:
    return {(f.kind, f.value, f.owner) for f in facts}


def test_extracts_every_planted_fact_and_never_pays_twice(sandbox, tmp_path):
    calls = [call(n) for n in range(5)]
    first = extractor(sandbox, tmp_path)
    outcomes = first.run([doc for doc, _ in calls])
    for doc, facts in calls:
        assert found(outcomes[doc.doc_id]) == planted(facts)
    assert first.model.stats.calls == 5 and first.stats.cache_hits == 0
    assert first.model.stats.tokens_in > 0 and first.model.stats.tokens_out > 0
    again = extractor(sandbox, tmp_path)
    outcomes = again.run([doc for doc, _ in calls])
    assert again.model.stats.calls == 0 and again.stats.cache_hits == 5
    assert all(found(outcomes[d.doc_id]) == planted(f) for d, f in calls)


def test_a_long_call_is_split_and_merged_without_losing_a_fact(sandbox, tmp_path):
    doc, facts = call(7, turns=300)
    small = extractor(sandbox, tmp_path, budget=600)
    outcome = small.run([doc])[doc.doc_id]
    assert small.stats.parts > 10 and small.model.stats.calls == small.stats.parts
    assert found(outcome) == planted(facts)
    whole = extractor(sandbox, tmp_path / "whole").run([doc])[doc.doc_id]
    assert whole.extraction.sentiment == outcome.extraction.sentiment


def test_the_part_budget_leaves_room_for_prompt_and_answer():
    resource = ChatModelResource(
        model=MODEL, api_key="k", context_tokens=8000, max_output_tokens=1000
    )
    budget = resource.part_budget(TokenCounter())
    assert 5000 < budget < 7000
    tight = ChatModelResource(model=MODEL, api_key="k", context_tokens=4000)
    with pytest.raises(ValueError, match="raise context_tokens or lower max_output_tokens"):
        tight.part_budget(TokenCounter())
    assert resource.cost_usd(1_000_000, 1_000_000) == pytest.approx(0.75)
    assert "SYNC_INSIGHTS_MODEL" in ChatModelResource().unconfigured_reason()
    assert "no API key" in ChatModelResource(model=MODEL).unconfigured_reason()
    with pytest.raises(ValueError):
        ChatModelResource().build()


def test_bad_json_is_asked_once_more_then_fails_uncached(sandbox, tmp_path):
    doc, facts = call(1)
    sandbox.openai.inject_chat("bad_json", count=1)
    once = extractor(sandbox, tmp_path)
    assert found(once.run([doc])[doc.doc_id]) == planted(facts)
    assert (once.model.stats.calls, once.model.stats.malformed) == (2, 1)
    other, _ = call(2)
    sandbox.openai.inject_chat("bad_json", count=2)
    twice = extractor(sandbox, tmp_path)
    outcome = twice.run([other])[other.doc_id]
    assert outcome.extraction is None and "malformed answer after 2 attempts" in outcome.error
    assert (twice.model.stats.calls, twice.stats.failed) == (2, 1)
    assert twice.cache.count() == 1  # only the first call's answer
    assert twice.stats.errors and other.doc_id in twice.stats.errors[0]


def test_a_refusal_is_recorded_not_retried_not_cached(sandbox, tmp_path):
    doc, _ = call(3)
    sandbox.openai.inject_chat("refusal")
    run = extractor(sandbox, tmp_path)
    outcome = run.run([doc])[doc.doc_id]
    assert outcome.extraction is None and outcome.refusal.startswith("I'm sorry")
    assert (run.model.stats.calls, run.model.stats.refusals, run.stats.refused) == (1, 1, 1)
    assert run.cache.count() == 0
    assert extractor(sandbox, tmp_path).run([doc])[doc.doc_id].extraction is not None


def test_a_429_is_waited_out(sandbox, tmp_path, fresh):
    doc, facts = call(4)
    sandbox.knobs.inject("chat.completions", "429", retry_after=3)
    run = extractor(sandbox, tmp_path)
    assert found(run.run([doc])[doc.doc_id]) == planted(facts)
    assert fresh and 3 <= fresh[0] < 3.5
    assert run.model.stats.http.rate_limited == 1 and run.model.stats.calls == 1


def test_a_timeout_is_retried_then_ends_in_a_clear_error(sandbox, tmp_path):
    sandbox.knobs.timeout_s = 1.0
    chat = model(sandbox, timeout_s=0.3, max_retries=1)
    doc, _ = call(5)
    sandbox.knobs.inject("chat.completions", "timeout", count=1)
    assert chat.extract(doc.title, doc.text).extraction is not None
    assert chat.stats.http.retries == 1
    sandbox.knobs.inject("chat.completions", "timeout", count=2)
    with pytest.raises(InsightsModelError) as failed:
        chat.extract(doc.title, doc.text)
    message = str(failed.value)
    assert "failed after 2 attempts" in message and "Timeout" in message
    assert MODEL in message and SANDBOX_OPENAI_KEY not in message


def test_one_failed_transcript_does_not_lose_the_others(sandbox, tmp_path):
    good, facts = call(10)
    bad, _ = call(11)
    sandbox.openai.inject_chat("bad_json", count=2, containing="call 11")
    run = extractor(sandbox, tmp_path)
    outcomes = run.run([good, bad])
    assert found(outcomes[good.doc_id]) == planted(facts)
    assert outcomes[bad.doc_id].error and run.stats.failed == 1 and run.stats.extracted == 1


def test_a_rejected_key_stops_the_batch(sandbox, tmp_path):
    docs = [call(n)[0] for n in range(3)]
    run = Extractor(
        ChatModel("sk-wrong", MODEL, sandbox.openai_base_url),
        InsightCache(tmp_path / "c.sqlite"),
        TokenCounter(),
        100_000,
    )
    with pytest.raises(InsightsModelAuthError, match="credentials were rejected"):
        run.run(docs)
