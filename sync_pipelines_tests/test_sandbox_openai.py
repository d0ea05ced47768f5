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
