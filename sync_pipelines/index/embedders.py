"""Turn chunk texts into vectors: local semantic (WordLlama) or lexical (hashing) embedders,
and any OpenAI-compatible server."""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import openai

from sync_pipelines.errors import MalformedResponseError, PermanentError, Verdict, final_error
from sync_pipelines.http import require_json
from sync_pipelines.index.tokens import TokenCounter, token_counter
from sync_pipelines.resilience import CallStats, call_with_retries

OPENAI_DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class EmbedderError(RuntimeError):
    """The embeddings server still failed after retries (5xx, timeouts, 429s)."""


class EmbedderPermanentError(EmbedderError, PermanentError):
    """The embeddings server's answer will not change on retry: a 4xx, a malformed body after a
    few tries, vectors of the wrong size."""


class EmbedderAuthError(EmbedderPermanentError):
    """The embeddings server rejected the credentials: retrying cannot help."""


@dataclass
class EmbedderStats:
    """Work done by one embedder, reported as materialization metadata."""

    requests: int = 0
    inputs: int = 0
    tokens: int = 0
    token_counter: str = ""


class Embedder(Protocol):
    dimension: int
    signature: str  # model + dimension: a change must re-embed everything
    stats: EmbedderStats

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dimension)."""
        ...


_WORDS = re.compile(r"\w+")
_WORD_CACHE_LIMIT = 1_000_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FEATURE_BITS = 40
_FEATURE_MASK = np.uint64((1 << _FEATURE_BITS) - 1)


class HashingEmbedder:
    """Signed feature hashing of lower-cased word unigrams and bigrams, sublinear tf, L2-normed.

    Lexical, not semantic: texts score close when they share words, not when they share
    meaning ("car" and "automobile" are unrelated to it). It needs no model at all, so tests
    that need exact lexical behaviour use it. Word hashes come from blake2b, never Python's
    salted hash(), so vectors are identical in every process.
    """

    def __init__(self, dimension: int = 384):
        if dimension < 2:
            raise ValueError(f"dimension must be at least 2, got {dimension}")
        self.dimension = dimension
        self.signature = f"hashing-v1:{dimension}"
        self.stats = EmbedderStats(token_counter="words")
        self._word_hashes: dict[str, int] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows, features = self._features(texts)
        # Count each distinct (text, feature) once: the row in the high bits, 40 bits of the
        # feature hash below (two features of one text colliding is a ~1e-8 event).
        keys = (rows.astype(np.uint64) << np.uint64(_FEATURE_BITS)) | (features & _FEATURE_MASK)
        keys, counts = np.unique(keys, return_counts=True)
        rows = (keys >> np.uint64(_FEATURE_BITS)).astype(np.int64)
        features = keys & _FEATURE_MASK
        signs = np.where(features >> np.uint64(_FEATURE_BITS - 1), -1.0, 1.0)
        cells = rows * self.dimension + (features % np.uint64(self.dimension)).astype(np.int64)
        weights = signs * (1.0 + np.log(counts))
        vectors = np.bincount(cells, weights=weights, minlength=len(texts) * self.dimension)
        vectors = vectors.reshape(len(texts), self.dimension)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # never zero: see _features
        self.stats.inputs += len(texts)
        return vectors.astype(np.float32)

    def _features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row index and 64-bit hash of every unigram and bigram of every text."""
        # A text without word characters ("!!!") hashes as a whole, so no vector is all zeros.
        words = [_WORDS.findall(t.lower()) or [t.strip().lower()] for t in texts]
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        flat = list(itertools.chain.from_iterable(words))
        self.stats.tokens += len(flat)
        if len(self._word_hashes) > _WORD_CACHE_LIMIT:
            self._word_hashes.clear()
        cache = self._word_hashes
        hashes = (cache[w] if w in cache else self._hash(w) for w in flat)
        unigrams = np.fromiter(hashes, dtype=np.uint64, count=len(flat))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        same_text = rows[:-1] == rows[1:]
        bigrams = _mix(unigrams[:-1][same_text] * _GOLDEN + unigrams[1:][same_text])
        return np.concatenate([rows, rows[:-1][same_text]]), np.concatenate([unigrams, bigrams])

    def _hash(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = self._word_hashes[word] = int.from_bytes(digest, "little")
        return value


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads combined word hashes over all 64 bits (wraps mod 2**64)."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


class OpenAIEmbedder:
    """Embeddings from OpenAI or any OpenAI-compatible server (vLLM, Ollama, TEI) by base URL.

    Requests are bounded by input count and by a token budget, and over-long inputs are cut to
    the model's limit with `counter` (tiktoken when cached, else the UTF-8 byte bound, which
    over-counts and so stays safe). Failures follow the sources' policy (`errors.classify`,
    `resilience.call_with_retries`; the SDK's own retries are off, they cannot see malformed
    bodies): 408/409/425/5xx and timeouts are retried `max_retries` times with backoff and
    jitter, 429s wait out Retry-After, a body that is not the embeddings JSON is retried a few
    times; 401/403 fail at once as EmbedderAuthError, other 4xx as EmbedderPermanentError.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        max_batch_inputs: int = 2048,
        max_batch_tokens: int = 300_000,
        max_input_tokens: int = 8191,
        timeout: float = 60.0,
        max_retries: int = 5,
        counter: TokenCounter | None = None,
    ):
        if not api_key:
            raise ValueError(
                "OpenAIEmbedder needs an api_key (any non-empty string for servers without auth)"
            )
        dimension = dimensions or OPENAI_DEFAULT_DIMENSIONS.get(model)
        if dimension is None:
            raise ValueError(f"model {model!r} has no known default dimension: pass dimensions=")
        if max_input_tokens > max_batch_tokens:
            raise ValueError("max_input_tokens cannot exceed max_batch_tokens")
        self.model = model
        self.dimension = dimension
        self.signature = f"openai:{model}:{dimension}"
        self.counter = counter or token_counter()
        self.stats = EmbedderStats(token_counter=self.counter.name)
        self.max_batch_inputs = max_batch_inputs
        self.max_batch_tokens = max_batch_tokens
        self.max_input_tokens = max_input_tokens
        self._dimensions = dimensions
        self._api_key = api_key
        self.max_retries = max_retries
        self.calls = CallStats()  # retries and 429 waits
        # Told (status, headers) of every answer, 429s included: a rate limiter reads the
        # x-ratelimit-* and Retry-After headers there (index/embed_limiter.py).
        self.response_observers: list = []
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(event_hooks={"response": [self._observe]}),
        )
        self.base_url = str(self._client.base_url)

    def _observe(self, response) -> None:
        for observer in self.response_observers:
            observer(response.status_code, response.headers)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        inputs, tokens = [], []
        for n, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"cannot embed an empty text (input {n}): the API rejects it")
            count = self.counter.count(text)
            if count > self.max_input_tokens:
                text = self.counter.truncate(text, self.max_input_tokens)
                count = self.counter.count(text)
            inputs.append(text)
            tokens.append(count)
        for start, end in self._batches(tokens):
            out[start:end] = self._request(inputs[start:end], sum(tokens[start:end]))
        return out

    def _batches(self, tokens: list[int]):
        """(start, end) ranges within both the input-count and the token budget."""
        start, used = 0, 0
        for n, count in enumerate(tokens):
            full = n - start == self.max_batch_inputs or used + count > self.max_batch_tokens
            if n > start and full:
                yield start, n
                start, used = n, 0
            used += count
        if start < len(tokens):
            yield start, len(tokens)

    def _request(self, batch: list[str], estimated_tokens: int) -> np.ndarray:
        where = f"embeddings server {self.base_url} (model {self.model!r})"

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> Exception:
            return final_error(
                f"{where}: POST embeddings",
                exc,
                verdict,
                attempts,
                [self._api_key],
                error=EmbedderError,
                permanent=EmbedderPermanentError,
                auth=EmbedderAuthError,
                auth_hint="check the embedder's API key",
            )

        response, vectors = call_with_retries(
            lambda: self._embeddings(batch),
            stats=self.calls,
            describe=describe,
            max_attempts=self.max_retries + 1,
            max_malformed_attempts=min(3, self.max_retries + 1),
            max_backoff_s=20.0,
        )
        self.stats.requests += 1
        self.stats.inputs += len(batch)
        usage = getattr(response, "usage", None)  # some compatible servers omit it
        reported = usage.total_tokens if usage is not None else 0
        self.stats.tokens += reported or estimated_tokens
        if vectors.shape[1] != self.dimension:
            raise EmbedderPermanentError(
                f"{where} returned {vectors.shape[1]}-dimensional vectors, expected "
                f"{self.dimension}: set dimensions= to the model's size"
            )
        return vectors

    def _embeddings(self, batch: list[str]):
        """One request: the parsed response and its vectors in input order, or
        MalformedResponseError quoting the answer (an HTML page, a cut-off body...)."""
        options = {"dimensions": self._dimensions} if self._dimensions else {}
        raw = self._client.embeddings.with_raw_response.create(
            input=batch, model=self.model, **options
        )
        answer = raw.http_response
        require_json(answer)
        try:
            response = raw.parse()
            data = sorted(response.data, key=lambda d: d.index)
            vectors = np.asarray([d.embedding for d in data], dtype=np.float32).reshape(
                len(data), -1
            )
        except (AttributeError, TypeError, ValueError) as exc:
            problem = f"not an embeddings list ({type(exc).__name__})"
            raise self._malformed(problem, answer) from exc
        if len(data) != len(batch):
            raise self._malformed(f"{len(data)} embeddings for {len(batch)} inputs", answer)
        return response, vectors

    @staticmethod
    def _malformed(problem: str, answer) -> MalformedResponseError:
        return MalformedResponseError(
            problem,
            status=answer.status_code,
            content_type=answer.headers.get("content-type"),
            body=answer.content,
        )


EMBEDDER_KINDS = ("wordllama", "hashing", "openai")


def build_embedder(kind: str, **options) -> Embedder:
    """An embedder from configuration: kind "wordllama" (local, semantic), "hashing" (local,
    lexical) or "openai" (any OpenAI-compatible server)."""
    if kind == "wordllama":
        from sync_pipelines.index.wordllama import WordLlamaEmbedder

        return WordLlamaEmbedder(**options)
    if kind == "hashing":
        return HashingEmbedder(**options)
    if kind == "openai":
        return OpenAIEmbedder(**options)
    raise ValueError(f"unknown embedder kind {kind!r}: expected one of {EMBEDDER_KINDS}")
