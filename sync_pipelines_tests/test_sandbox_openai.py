"""The embeddings emulator, driven by the real openai SDK."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY, count_tokens
from sync_pipelines_sandbox.server import Sandbox

MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(company=Company.generate(messages=200)) as sb:
        yield sb


@pytest.fixture(autouse=True)
def fresh_knobs(sandbox):
    sandbox.knobs.reset()
    yield
    sandbox.knobs.reset()


@pytest.fixture
def client(sandbox) -> OpenAI:
    return OpenAI(api_key=SANDBOX_OPENAI_KEY, base_url=sandbox.openai_base_url, max_retries=0)


def cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_default_base64_path_matches_float_path(client, sandbox):
    texts = ["Deploy the billing api to staging", "Café ☕ et 了解しました 🎉"]
    default = client.embeddings.create(model=MODEL, input=texts)
    floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1] and default.model == MODEL
    for a, b in zip(default.data, floats.data, strict=True):
        assert len(a.embedding) == 1536
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
        assert abs(np.linalg.norm(a.embedding) - 1) < 1e-5
    assert (
        default.usage.prompt_tokens == default.usage.total_tokens == sum(map(count_tokens, texts))
    )


def test_wire_format(sandbox):
    headers = {"Authorization": f"Bearer {SANDBOX_OPENAI_KEY}"}
    body = {"model": MODEL, "input": "hello", "encoding_format": "base64", "dimensions": 8}
    answer = httpx.post(f"{sandbox.openai_base_url}/embeddings", json=body, headers=headers).json()
    assert answer["object"] == "list" and answer["data"][0]["object"] == "embedding"
    vec = np.frombuffer(base64.b64decode(answer["data"][0]["embedding"]), dtype="<f4")
    assert vec.shape == (8,) and abs(np.linalg.norm(vec) - 1) < 1e-5


def test_dimensions_and_models(client):
    short = client.embeddings.create(model=MODEL, input="hello world", dimensions=256)
    assert len(short.data[0].embedding) == 256
    large = client.embeddings.create(model="text-embedding-3-large", input="hello world")
    assert len(large.data[0].embedding) == 3072
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=256)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input="x", dimensions=4096)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")


def test_deterministic_and_meaningful(client):
    texts = [
        "billing api deploy to staging failed",
        "the billing api deploy failed on staging again",
        "lunch menu: tacos and churros on friday",
    ]
    first = [d.embedding for d in client.embeddings.create(model=MODEL, input=texts).data]
    again = [d.embedding for d in client.embeddings.create(model=MODEL, input=texts).data]
    assert np.array_equal(first, again)
    assert cosine(first[0], first[1]) > 0.5 > cosine(first[0], first[2])


def test_limits_answer_400(client, sandbox):
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=["x"] * 2049)
    assert len(client.embeddings.create(model=MODEL, input=["x"] * 2048).data) == 2048
    with pytest.raises(openai.BadRequestError, match="maximum context length is 8192"):
        client.embeddings.create(model=MODEL, input="word " * 8193)
    with pytest.raises(openai.BadRequestError) as too_many:
        client.embeddings.create(model=MODEL, input=["word " * 8000] * 38)
    assert too_many.value.code == "max_tokens_per_request"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=["fine", ""])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=[[1, 2, 3]])
    assert too_many.value.body["type"] == "max_tokens_per_request"


def test_bad_key(sandbox):
    bad = OpenAI(api_key="sk-wrong", base_url=sandbox.openai_base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.embeddings.create(model=MODEL, input="x")
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"


def test_counters(client, sandbox):
    state = sandbox.openai
    before = (state.requests, state.inputs_embedded, state.tokens)
    client.embeddings.create(model=MODEL, input=["one two", "three, four!"])
    assert (state.requests, state.inputs_embedded, state.tokens) == (
        before[0] + 1,
        before[1] + 2,
        before[2] + 2 + 4,
    )
    assert sandbox.knobs.calls["embeddings"] == 1


def test_token_count_approximation():
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("   ") == 1
    assert count_tokens("了解しました") == 1  # one \w+ run: an undercount, documented


def test_rate_limit_shape_and_sdk_retry(client, sandbox):
    sandbox.knobs.inject("embeddings", "429", retry_after=1)
    with pytest.raises(openai.RateLimitError) as limited:
        client.embeddings.create(model=MODEL, input="x")
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.code == "rate_limit_exceeded"
    sandbox.knobs.inject("embeddings", "429", retry_after=1)
    sandbox.knobs.inject("embeddings", "500")
    patient = OpenAI(api_key=SANDBOX_OPENAI_KEY, base_url=sandbox.openai_base_url, max_retries=2)
    assert patient.embeddings.create(model=MODEL, input="x").data
    assert sandbox.knobs.count_429["embeddings"] == 2
    assert sandbox.knobs.calls["embeddings"] == 4


# ------------------------------------------------------------------ chat completions
CHAT = "gpt-4o-mini"


def _insights_format() -> dict:
    from sync_pipelines.insights.schema import RESPONSE_FORMAT

    return RESPONSE_FORMAT


def _call_text(seed: int = 3) -> tuple[str, list]:
    import random

    from sync_pipelines_sandbox.insight_terms import POSITIVE_LINES, customer_lines

    facts = customer_lines(random.Random(seed), ["Ana Diaz", "Bo Li"], count=5)
    lines = ["Ana Diaz: Thanks for joining, can everyone hear me?"]
    lines += [f"Jordan Blake: {f.quote}" for f in facts] + [f"Jordan Blake: {POSITIVE_LINES[0]}"]
    return "\n".join(lines), facts


def _chat(client, text: str, **options):
    return client.chat.completions.create(
        model=options.pop("model", CHAT),
        messages=[
            {"role": "system", "content": "Extract insights. Answer in JSON."},
            {"role": "user", "content": text},
        ],
        response_format=options.pop("response_format", _insights_format()),
        **options,
    )


def test_chat_completion_answers_exactly_the_facts_the_text_states(client, sandbox):
    import json

    from sync_pipelines_sandbox.insight_terms import sentiment

    text, facts = _call_text()
    before = sandbox.openai.chat_requests
    completion = _chat(client, text, max_completion_tokens=2000)
    assert completion.object == "chat.completion" and completion.model == CHAT
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.refusal is None
    answer = json.loads(choice.message.content)
    assert [(i["kind"], i["value"], i["owner"]) for i in answer["insights"]] == [
        (f.kind, f.value, f.owner) for f in facts
    ]
    assert all(i["quote"] in text for i in answer["insights"])
    assert answer["sentiment"] == sentiment(text)
    usage = completion.usage
    assert usage.prompt_tokens == count_tokens(text) + count_tokens(
        "Extract insights. Answer in JSON."
    ) + 6
    assert usage.completion_tokens == count_tokens(choice.message.content)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert sandbox.openai.chat_requests == before + 1
    assert sandbox.knobs.calls["chat.completions"] == 1
    # only the user turns are read: the same facts in the system prompt count for nothing
    quiet = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "system", "content": text}, {"role": "user", "content": "Hi."}],
        response_format=_insights_format(),
    )
    assert json.loads(quiet.choices[0].message.content)["insights"] == []


def test_chat_completion_validates_like_openai(client, sandbox):
    with pytest.raises(openai.NotFoundError) as missing:
        _chat(client, "hello", model="gpt-9")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model=CHAT, messages=[])
    assert empty.value.code == "empty_array"
    loose = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        _chat(client, "hello", response_format=loose)
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hello"}],
            response_format={"type": "json_object"},
        )
    sandbox.openai.chat_context_tokens = 50
    try:
        with pytest.raises(openai.BadRequestError) as long:
            _chat(client, "word " * 60)
    finally:
        sandbox.openai.chat_context_tokens = None
    assert long.value.code == "context_length_exceeded"
    text, _ = _call_text()
    cut = _chat(client, text, max_completion_tokens=20).choices[0]
    assert cut.finish_reason == "length" and count_tokens(cut.message.content) <= 20


def test_chat_faults_refusal_bad_json_and_429(client, sandbox):
    import json

    text, _ = _call_text()
    sandbox.openai.inject_chat("refusal")
    refused = _chat(client, text).choices[0].message
    assert refused.content is None and refused.refusal.startswith("I'm sorry")
    sandbox.openai.inject_chat("bad_json", containing="needle")
    assert json.loads(_chat(client, text).choices[0].message.content)  # not this one
    broken = _chat(client, text + "\nneedle").choices[0].message.content
    with pytest.raises(ValueError):
        json.loads(broken)
    assert json.loads(_chat(client, text + "\nneedle").choices[0].message.content)
    sandbox.knobs.inject("chat.completions", "429", retry_after=2)
    with pytest.raises(openai.RateLimitError) as limited:
        _chat(client, text)
    assert limited.value.response.headers["retry-after"] == "2"
    assert sandbox.knobs.count_429["chat.completions"] == 1
    with pytest.raises(ValueError):
        sandbox.openai.inject_chat("tantrum")
