"""WordLlama embeddings: semantic, local, offline (the embedded setups' default embedder)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from sync_pipelines.index.embedders import EmbedderStats

WORDLLAMA_CONFIG = "l2_supercat"
# The wheel ships the 256-d weights; 64 and 128 are their Matryoshka truncations.
WORDLLAMA_DIMENSIONS = (64, 128, 256)
_WORDLLAMA_LOCK = threading.Lock()
_WORDLLAMA_MODELS: dict[int, tuple[np.ndarray, object]] = {}


class WordLlamaEmbedder:
    """Semantic local embeddings: WordLlama's token vectors (distilled from a large language
    model's embedding layer), mean-pooled and L2-normed.

    It understands meaning ("billing migration" is near "payment system cutover") yet needs no
    network and no GPU: the model ships inside the wordllama wheel and is loaded once per
    process. Pooling is done here in windows of `window_tokens` tokens, so memory is bounded
    by the window (512 tokens: 0.5 MB, cache-sized and measured fastest), not by the batch or
    the longest text (wordllama's own `embed` pads every batch to its longest text: 8x the CPU
    on chat messages, bench/embedder_bench.py). Safe to call from several threads at once.
    """

    def __init__(self, dimension: int = 256, window_tokens: int = 512):
        if dimension not in WORDLLAMA_DIMENSIONS:
            raise ValueError(
                f"wordllama dimension must be one of {WORDLLAMA_DIMENSIONS}, got {dimension}"
            )
        if window_tokens < 1:
            raise ValueError(f"window_tokens must be at least 1, got {window_tokens}")
        self.dimension = dimension
        self.signature = f"wordllama:{WORDLLAMA_CONFIG}:{dimension}"
        self.stats = EmbedderStats(token_counter=f"wordllama:{WORDLLAMA_CONFIG}")
        self.window_tokens = window_tokens
        # Loaded now, not on first use: a missing model fails the build, not a run midway.
        self._table, self._tokenizer = wordllama_model(dimension)
        self._stats_lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        for n, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"cannot embed an empty text (input {n}): it has no meaning")
        ids = [np.asarray(e.ids, dtype=np.int64) for e in self._encode(texts)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        if not lengths.all():
            n = int(np.argmin(lengths))
            raise ValueError(f"wordllama's tokenizer found no tokens in input {n}: {texts[n]!r}")
        sums = self._token_sums(np.concatenate(ids), lengths)
        # The mean's direction is the sum's: normalising the sum is mean-pooling + L2 norm.
        sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.inputs += len(texts)
            self.stats.tokens += int(lengths.sum())
        return sums

    def _encode(self, texts: list[str]):
        try:
            return self._tokenizer.encode_batch(texts, add_special_tokens=False)
        except TypeError:
            # A lone surrogate (broken JSON from an API) fails it: replace it, as tiktoken does.
            clean = [t.encode("utf-16", "surrogatepass").decode("utf-16", "replace") for t in texts]
            return self._tokenizer.encode_batch(clean, add_special_tokens=False)

    def _token_sums(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Sum of each text's token vectors, `window_tokens` looked-up vectors at a time."""
        ends = np.cumsum(lengths)
        starts = ends - lengths
        sums = np.zeros((len(lengths), self.dimension), dtype=np.float32)
        for low in range(0, len(flat), self.window_tokens):
            high = min(len(flat), low + self.window_tokens)
            first = int(np.searchsorted(ends, low, side="right"))  # texts ending past `low`
            last = int(np.searchsorted(starts, high, side="left"))  # texts starting before `high`
            offsets = np.maximum(starts[first:last], low) - low  # strictly increasing: no empties
            vectors = self._table[flat[low:high]]
            sums[first:last] += np.add.reduceat(vectors, offsets, axis=0)
        return sums


def wordllama_model(dimension: int = 256) -> tuple[np.ndarray, object]:
    """WordLlama's token table and an unpadded tokenizer, loaded once per process (thread-safe)."""
    with _WORDLLAMA_LOCK:
        model = _WORDLLAMA_MODELS.get(dimension)
        if model is None:
            model = _WORDLLAMA_MODELS[dimension] = _load_wordllama(dimension)
        return model


def _load_wordllama(dimension: int) -> tuple[np.ndarray, object]:
    """Load from the installed package only: its wheel holds weights and tokenizer, and a
    download (wordllama's default when a file is missing) must never happen at run time."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        import wordllama
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise RuntimeError(
            "embedder 'wordllama' needs the wordllama package: pip install 'wordllama>=0.4'"
        ) from exc
    finally:
        # wordllama's import calls logging.basicConfig(INFO): undo it, or every library's
        # INFO records would start printing.
        root.handlers[:], root.level = handlers, level
    package = Path(wordllama.__file__).parent
    try:
        model = wordllama.WordLlama.load(
            WORDLLAMA_CONFIG,
            cache_dir=package,
            dim=256,
            trunc_dim=None if dimension == 256 else dimension,
            disable_download=True,
        )
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise RuntimeError(
            f"wordllama could not load its {WORDLLAMA_CONFIG} model from {package} "
            f"({type(exc).__name__}: {exc}); reinstall wordllama (the wheel ships the model, "
            "downloads are disabled)"
        ) from exc
    tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    table = np.ascontiguousarray(model.embedding, dtype=np.float32)
    table.setflags(write=False)
    return table, tokenizer
