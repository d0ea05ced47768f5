"""Embedders: the local semantic (WordLlama) and hashing ones, and the OpenAI one against a fake
embeddings server."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.server import Sandbox

from sync_pipelines import resilience
from sync_pipelines.errors import PermanentError
from sync_pipelines.index.embedders import (
    EmbedderAuthError,
    EmbedderError,
    EmbedderPermanentError,
    HashingEmbedder,
    OpenAIEmbedder,
    build_embedder,
)
from sync_pipelines.index.resources import EmbedderResource
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.index.wordllama import WordLlamaEmbedder

API_KEY = "sk-test-secret-0123456789"


# --- HashingEmbedder -------------------------------------------------------------------------


def test_hashing_vectors_are_unit_length_float32():
    embedder = HashingEmbedder(dimension=64)
    vectors = embedder.embed(["Deploy the sync", "!!!", "", "a"])
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.embed([]).shape == (0, 64)
    assert embedder.signature == "hashing-v1:64"
    assert embedder.stats.inputs == 4 and embedder.stats.token_counter == "words"


def test_hashing_similar_texts_are_closer_than_unrelated():
    embedder = HashingEmbedder()
    query, near, far = embedder.embed(
        [
            "the nightly slack sync failed with a rate limit error",
            "slack sync failed again: rate limit error at night",
            "quarterly revenue grew in the north-east sales region",
        ]
    )
    assert query @ near > 0.4
    assert query @ near > query @ far + 0.3


def test_hashing_is_case_insensitive_and_order_aware():
    embedder = HashingEmbedder()
    a, b, c = embedder.embed(["New York to Boston", "new york TO boston", "Boston to New York"])
    assert a @ b == pytest.approx(1.0, abs=1e-6)
    assert a @ c < 0.99  # bigrams differ


def test_hashing_is_identical_across_processes():
    texts = ["Same text, other process.", "Zweiter Text mit Umlauten äöü", "日本語のテキスト"]
    script = (
        "import sys, json\n"
        "from sync_pipelines.index.embedders import HashingEmbedder\n"
        "print(json.dumps(HashingEmbedder(128).embed(json.loads(sys.argv[1])).tolist()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(texts)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "999"},
    ).stdout
    theirs = np.asarray(json.loads(out), dtype=np.float32)
    np.testing.assert_array_equal(theirs, HashingEmbedder(128).embed(texts))


def test_build_embedder():
    assert isinstance(build_embedder("wordllama"), WordLlamaEmbedder)
    assert isinstance(build_embedder("hashing", dimension=32), HashingEmbedder)
    assert build_embedder("openai", api_key="k", base_url="http://127.0.0.1:9/v1").dimension == 1536
    with pytest.raises(ValueError, match="'sentence-transformers'"):
        build_embedder("sentence-transformers")


def test_openai_dimension_rules():
    assert OpenAIEmbedder(api_key="k", model="text-embedding-3-large").dimension == 3072
    assert OpenAIEmbedder(api_key="k", dimensions=256).signature == (
        "openai:text-embedding-3-small:256"
    )
    with pytest.raises(ValueError, match="dimensions="):
        OpenAIEmbedder(api_key="k", model="nomic-embed-text")
    with pytest.raises(ValueError, match="api_key"):
        OpenAIEmbedder(api_key="")


# --- WordLlamaEmbedder ------------------------------------------------------------------------

PARAPHRASE_QUERY = "payment system cutover for recurring plans"
BILLING = "the billing migration moves subscriptions to the new payment provider"
OTHER_MESSAGES = [
    "lunch is at noon on friday in the big room",
    "the sync job for jira failed with a timeout again",
    "can someone review my pull request for the login page",
    "quarterly planning offsite moved to next week",
    # shares two of the query's words, none of its meaning
    "the office heating system is broken, plans to fix it on monday",
]


def ranking(embedder, query: str, texts: list[str]) -> list[str]:
    vectors = embedder.embed([query, *texts])
    scores = vectors[1:] @ vectors[0]
    return [texts[i] for i in np.argsort(-scores, kind="stable")]


def test_wordllama_finds_a_paraphrase_that_hashing_misses():
    texts = [*OTHER_MESSAGES, BILLING]
    assert ranking(WordLlamaEmbedder(), PARAPHRASE_QUERY, texts)[0] == BILLING
    # The lexical embedder prefers the message that shares words: why wordllama is the default.
    assert ranking(HashingEmbedder(), PARAPHRASE_QUERY, texts)[0] != BILLING


def test_wordllama_vectors_stats_and_signature():
    embedder = WordLlamaEmbedder()
    vectors = embedder.embed([BILLING, "日本語のテキスト 👍", "x"])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.signature == "wordllama:l2_supercat:256"
    stats = embedder.stats
    assert (stats.requests, stats.inputs) == (1, 3) and stats.tokens > 10
    assert stats.token_counter == "wordllama:l2_supercat"
    assert embedder.embed([]).shape == (0, 256) and embedder.stats.requests == 1
    small = WordLlamaEmbedder(dimension=64)
    assert small.embed([BILLING]).shape == (1, 64)
    assert small.signature == "wordllama:l2_supercat:64" != embedder.signature
    with pytest.raises(ValueError, match="dimension must be one of"):
        WordLlamaEmbedder(dimension=300)
    with pytest.raises(ValueError, match="empty text \\(input 1\\)"):
        embedder.embed(["fine", "  \n"])
    broken = embedder.embed(["a lone surrogate \ud800 from broken JSON"])
    assert np.isfinite(broken).all()


def test_wordllama_pools_as_wordllama_does_in_bounded_windows():
    """Our windowed pooling equals wordllama's own embed (mean of token vectors, L2-normed),
    also when texts straddle windows of a few tokens."""
    import wordllama

    own = wordllama.WordLlama.load(
        cache_dir=Path(wordllama.__file__).parent, disable_download=True
    ).embed
    texts = [PARAPHRASE_QUERY, BILLING, *OTHER_MESSAGES, "ok", " ".join(OTHER_MESSAGES) * 20]
    theirs = own(texts, norm=True)
    for window in (3, 7, 32_768):
        ours = WordLlamaEmbedder(window_tokens=window).embed(texts)
        np.testing.assert_allclose(ours, theirs, atol=2e-6)


def test_wordllama_loads_once_and_embeds_from_threads():
    first, second = WordLlamaEmbedder(), WordLlamaEmbedder()
    assert first._table is second._table  # one model per process
    texts = [f"{message} #{n}" for n, message in enumerate(OTHER_MESSAGES * 40)]
    expected = first.embed(texts)
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def work(slot: int) -> None:
        barrier.wait()
        results[slot] = second.embed(texts)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)
    assert (second.stats.requests, second.stats.inputs) == (8, 8 * len(texts))
    assert second.stats.tokens == 8 * first.stats.tokens


def test_wordllama_import_leaves_root_logging_alone():
    """wordllama's import calls logging.basicConfig(INFO); loading it must undo that."""
    script = (
        "import logging\n"
        "from sync_pipelines.index.wordllama import WordLlamaEmbedder\n"
        "WordLlamaEmbedder()\n"
        "root = logging.getLogger()\n"
        "print(len(root.handlers), root.level)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", str(logging.WARNING)]


# --- configuration: SYNC_EMBEDDER, SYNC_CHUNK_TOKENS, SYNC_CHUNK_OVERLAP ------------------------


@pytest.fixture
def env(monkeypatch):
    for name in (
        "SYNC_EMBEDDER",
        "SYNC_EMBEDDING_DIMENSIONS",
        "SYNC_CHUNK_TOKENS",
        "SYNC_CHUNK_OVERLAP",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_wordllama_and_256_token_chunks(env):
    from sync_pipelines.definitions import embedder_resource

    resource = embedder_resource()
    assert resource.kind == "wordllama" and EmbedderResource().kind == "wordllama"
    assert (resource.chunk_tokens, resource.chunk_overlap_tokens) == (256, 32)
    assert isinstance(resource.build(), WordLlamaEmbedder)
    splitter = resource.splitter()
    assert (splitter.chunk_tokens, splitter.overlap_tokens) == (256, 32)
    assert splitter.counter.name == "bpe-openai:cl100k_base"


def test_chunk_budget_from_the_environment(env):
    from sync_pipelines.definitions import embedder_resource

    env.setenv("SYNC_EMBEDDER", "hashing")
    env.setenv("SYNC_CHUNK_TOKENS", " 512 ")
    env.setenv("SYNC_CHUNK_OVERLAP", "64")
    resource = embedder_resource()
    assert (resource.kind, resource.chunk_tokens, resource.chunk_overlap_tokens) == (
        "hashing",
        512,
        64,
    )
    env.delenv("SYNC_CHUNK_OVERLAP")
    env.setenv("SYNC_CHUNK_TOKENS", "40")  # the default overlap would be too much: scaled down
    assert embedder_resource().chunk_overlap_tokens == 5


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"SYNC_CHUNK_TOKENS": "many"}, "SYNC_CHUNK_TOKENS must be a whole number from 8 to 8191"),
        ({"SYNC_CHUNK_TOKENS": "4"}, "got '4'"),
        ({"SYNC_CHUNK_TOKENS": "100000"}, "SYNC_CHUNK_TOKENS .* got '100000'"),
        ({"SYNC_CHUNK_OVERLAP": "-1"}, "SYNC_CHUNK_OVERLAP must be a whole number from 0 to 128"),
        ({"SYNC_CHUNK_TOKENS": "100", "SYNC_CHUNK_OVERLAP": "60"}, "at most half of 100"),
        ({"SYNC_CHUNK_OVERLAP": "3.5"}, "got '3.5'"),
        ({"SYNC_EMBEDDER": "sentence-transformers"}, "SYNC_EMBEDDER must be one of wordllama"),
    ],
)
def test_bad_configuration_is_a_clear_error(env, variables, message):
    from sync_pipelines.definitions import embedder_resource

    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        embedder_resource()


# --- OpenAIEmbedder against a fake server ----------------------------------------------------


class FakeEmbeddings:
    """A scripted /v1/embeddings endpoint: records requests, answers from a queue of statuses.

    Each vector encodes its input: [len(text), position in the request, 1, 0, ...].
    """

    def __init__(self, dimension=8, reply_format="auto"):
        self.dimension = dimension
        self.reply_format = reply_format  # "auto" = what the request asked for, or "float"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.failures: list[tuple[int, dict]] = []  # (status, headers) answered first, in order
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if fake.failures:
                    status, headers = fake.failures.pop(0)
                    return self.reply(status, {"error": {"message": f"status {status}"}}, headers)
                self.reply(200, fake.answer(body))

            def reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def answer(self, body: dict) -> dict:
        dimension = body.get("dimensions", self.dimension)
        data = []
        for n, text in enumerate(body["input"]):
            vector = np.zeros(dimension, dtype="<f4")
            vector[:3] = [len(text), n, 1]
            as_base64 = body.get("encoding_format") == "base64" and self.reply_format == "auto"
            value = base64.b64encode(vector.tobytes()).decode() if as_base64 else vector.tolist()
            data.append({"object": "embedding", "index": n, "embedding": value})
        data.reverse()  # servers may answer out of order: `index` says where each belongs
        tokens = sum(len(t) for t in body["input"])
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The retry layer's sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(resilience, "_sleep", slept.append)
    return slept


@pytest.fixture
def fake():
    server = FakeEmbeddings()
    yield server
    server.server.shutdown()
    server.server.server_close()


def embedder(fake, **options) -> OpenAIEmbedder:
    options = {"dimensions": fake.dimension, "counter": TokenCounter(), **options}
    return OpenAIEmbedder(api_key=API_KEY, base_url=fake.base_url, max_retries=2, **options)


@pytest.mark.parametrize("reply_format", ["auto", "float"])
def test_decodes_base64_and_float_replies_in_input_order(fake, reply_format):
    fake.reply_format = reply_format
    texts = ["a", "bbb", "cc"]
    vectors = embedder(fake).embed(texts)
    assert fake.requests[0]["encoding_format"] == "base64"  # what the SDK asks for
    assert vectors.dtype == np.float32 and vectors.shape == (3, 8)
    assert vectors[:, 0].tolist() == [1, 3, 2]
    assert fake.headers[0]["authorization"] == f"Bearer {API_KEY}"


def test_batches_by_input_count(fake):
    e = embedder(fake, max_batch_inputs=3)
    vectors = e.embed([f"text {i}" * (i + 1) for i in range(7)])
    assert [len(r["input"]) for r in fake.requests] == [3, 3, 1]
    assert vectors[:, 0].tolist() == [len(f"text {i}" * (i + 1)) for i in range(7)]
    assert e.stats.requests == 3 and e.stats.inputs == 7
    assert e.stats.tokens == sum(len(f"text {i}" * (i + 1)) for i in range(7))
    assert e.stats.token_counter == "utf8-bytes"


def test_batches_by_token_budget(fake):
    e = embedder(fake, max_batch_tokens=100, max_input_tokens=100)
    e.embed(["x" * 40] * 5)
    assert [len(r["input"]) for r in fake.requests] == [2, 2, 1]
    assert all(sum(len(t.encode()) for t in r["input"]) <= 100 for r in fake.requests)


def test_truncates_over_long_inputs(fake):
    text = "é" * 100 + " tail"  # 205 bytes
    embedder(fake, max_input_tokens=51).embed([text, "short"])
    sent = fake.requests[0]["input"]
    assert sent[0] == "é" * 25 and sent[1] == "short"  # cut at a character boundary


def test_dimensions_sent_only_when_set(fake):
    embedder(fake, dimensions=8).embed(["a"])
    fake.dimension = 1536
    embedder(fake, dimensions=None).embed(["a"])
    assert fake.requests[0]["dimensions"] == 8
    assert "dimensions" not in fake.requests[1]


def test_wrong_dimension_is_a_clear_error(fake):
    with pytest.raises(EmbedderError, match="returned 8-dimensional vectors, expected 1536"):
        embedder(fake, dimensions=None).embed(["a"])


def test_empty_input_makes_no_request(fake):
    assert embedder(fake).embed([]).shape == (0, 8)
    assert fake.requests == []
    with pytest.raises(ValueError, match="empty text"):
        embedder(fake).embed(["fine", "  "])


def test_401_fails_fast_without_leaking_the_key(fake):
    fake.failures = [(401, {})] * 5
    with pytest.raises(EmbedderAuthError) as caught:
        embedder(fake).embed(["a"])
    message = str(caught.value)
    assert fake.base_url in message and "text-embedding-3-small" in message and "401" in message
    assert API_KEY not in message and caught.value.__cause__ is None
    assert len(fake.requests) == 1  # never retried


def test_429_waits_out_retry_after_then_succeeds(fake, waits):
    fake.failures = [(429, {"Retry-After": "3"})]
    e = embedder(fake)
    vectors = e.embed(["a", "b"])
    assert len(waits) == 1 and 3 <= waits[0] <= 3.25  # Retry-After, plus jitter
    assert len(fake.requests) == 2 and vectors.shape == (2, 8)
    assert e.calls.rate_limited == 1


@pytest.mark.parametrize("status", [408, 409, 425, 500, 502])
def test_statuses_that_can_change_are_retried(fake, waits, status):
    fake.failures = [(status, {})]
    assert embedder(fake).embed(["a"]).shape == (1, 8)
    assert len(fake.requests) == 2


def test_persistent_server_errors_surface_after_retries(fake, waits):
    fake.failures = [(503, {"retry-after-ms": "10"})] * 10
    with pytest.raises(EmbedderError, match="failed after 3 attempts: HTTP 503") as caught:
        embedder(fake).embed(["a"])
    assert len(fake.requests) == 3  # first try + max_retries=2
    assert waits == [0.01, 0.01]  # the server's retry-after-ms
    assert not isinstance(caught.value, PermanentError)  # Dagster may retry the run


# --- OpenAIEmbedder against the sandbox's embeddings emulator, through its fault knobs ---------


@pytest.fixture(scope="module")
def emulator():
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def knobs(emulator):
    emulator.knobs.reset()
    yield emulator.knobs
    emulator.knobs.reset()


def sandbox_embedder(emulator, **options) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        api_key=SANDBOX_OPENAI_KEY,
        base_url=emulator.openai_base_url,
        dimensions=16,
        counter=TokenCounter(),
        **options,
    )


@pytest.mark.parametrize("garbage", ["malformed", "html"])
def test_garbage_then_a_good_answer_succeeds(emulator, knobs, waits, garbage):
    knobs.inject("embeddings", garbage, count=2)
    e = sandbox_embedder(emulator)
    assert e.embed(["deploy the sync"]).shape == (1, 16)
    assert knobs.calls["embeddings"] == 3 and e.calls.retries == 2


def test_502_then_garbage_forever_fails_naming_the_server(emulator, knobs, waits):
    knobs.inject("embeddings", "502")
    knobs.inject("embeddings", "html", count=100)
    with pytest.raises(EmbedderPermanentError) as caught:
        sandbox_embedder(emulator).embed(["deploy the sync"])
    message = str(caught.value)
    assert message.startswith(f"embeddings server {emulator.openai_base_url}")
    assert "malformed answer after 4 attempts" in message  # the 502, then 3 login pages
    assert "HTTP 200 (text/html" in message and "<title>Sign in</title>" in message
    assert knobs.calls["embeddings"] == 4


def test_a_cut_off_body_forever_fails_naming_the_server(emulator, knobs, waits):
    knobs.inject("embeddings", "malformed", count=100)
    with pytest.raises(EmbedderPermanentError, match=r"HTTP 200 \(application/json\): '\{"):
        sandbox_embedder(emulator).embed(["deploy the sync"])
    assert knobs.calls["embeddings"] == 3


@pytest.mark.parametrize("status", ["400", "404", "422"])
def test_answers_that_will_not_change_fail_at_once(emulator, knobs, waits, status):
    knobs.inject("embeddings", status, count=1)  # a retry would succeed
    with pytest.raises(EmbedderPermanentError, match=f"POST embeddings: HTTP {status}"):
        sandbox_embedder(emulator).embed(["deploy the sync"])
    assert knobs.calls["embeddings"] == 1 and waits == []
