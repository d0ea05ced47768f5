"""Token counting for chunk budgets and embedding limits, with an offline fallback.

tiktoken fetches its encoding files over the network on first use. Offline (tests, the
sandbox, air-gapped deployments) we bound tokens by the UTF-8 byte length instead: every
cl100k/o200k token spans at least one byte, so bytes >= tokens and a byte budget never
overflows a token budget. Which counter ran is recorded in `.name` so metrics can say so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile

import tiktoken
import tiktoken_ext.openai_public

BYTES_NAME = "utf8-bytes"
MODES = ("auto", "tiktoken", "bytes")


class TokenCounter:
    """Counts and truncates text with a tiktoken encoding, or by UTF-8 bytes when given none."""

    def __init__(self, encoding: tiktoken.Encoding | None = None):
        self._encoding = encoding
        self.name = f"tiktoken:{encoding.name}" if encoding is not None else BYTES_NAME

    def count(self, text: str) -> int:
        if self._encoding is None:
            return len(_utf8(text))
        return len(self._encoding.encode(text, disallowed_special=()))

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of `text` (cut at a character boundary) within `max_tokens`."""
        if max_tokens <= 0:
            return ""
        if self._encoding is None:
            return _bytes_prefix(text, max_tokens)
        tokens = self._encoding.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text
        # A token may end inside a multi-byte character: keep whole characters only, then
        # re-check, because BPE on the shorter string can tokenize differently.
        prefix = _whole_chars(self._encoding.decode_bytes(tokens[:max_tokens]))
        while prefix and self.count(prefix) > max_tokens:
            prefix = prefix[:-1]
        return prefix


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate (seen in broken JSON from APIs) must not crash counting.
    return text.encode("utf-8", "surrogatepass")


def _whole_chars(data: bytes) -> str:
    """Decode `data`, dropping a trailing partial character."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # first byte of the last character
            width = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if width > back:
                end -= back
            break
    return data[:end].decode("utf-8", "surrogatepass")


def _bytes_prefix(text: str, max_bytes: int) -> str:
    data = _utf8(text)
    if len(data) <= max_bytes:
        return text
    return _whole_chars(data[:max_bytes])


def _cached_encoding(encoding: str) -> tiktoken.Encoding | None:
    """The encoding if tiktoken's cache holds its files, without touching the network."""
    constructor = tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS.get(encoding)
    cache_dir = _tiktoken_cache_dir()
    if constructor is None or not cache_dir:
        return None
    # tiktoken caches each file under sha1(url); the constructors name their urls as literals
    # (an encoding built from another one lists none, and so falls back to bytes).
    urls = [c for c in constructor.__code__.co_consts if isinstance(c, str) and "://" in c]
    paths = [os.path.join(cache_dir, hashlib.sha1(u.encode()).hexdigest()) for u in urls]
    if not paths or not all(os.path.exists(p) for p in paths):
        return None
    try:
        return tiktoken.get_encoding(encoding)
    except Exception:  # a corrupt cache file makes tiktoken try the network; we fall back
        return None


def _tiktoken_cache_dir() -> str:
    """Where tiktoken keeps its files, by its own rules ("" disables its cache)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


@functools.lru_cache(maxsize=None)
def token_counter(encoding: str = "cl100k_base", mode: str = "auto") -> TokenCounter:
    """The process-wide counter: `auto` uses tiktoken when its files are cached, else bytes.

    `tiktoken` forces tiktoken (downloading the encoding if needed, raising if that fails);
    `bytes` forces the UTF-8 byte bound.
    """
    if mode not in MODES:
        raise ValueError(f"unknown token counter mode {mode!r}; expected one of {MODES}")
    if mode == "bytes":
        return TokenCounter()
    if mode == "tiktoken":
        try:
            return TokenCounter(tiktoken.get_encoding(encoding))
        except Exception as exc:
            raise RuntimeError(
                f"tiktoken could not load encoding {encoding!r} ({type(exc).__name__}); "
                "set TIKTOKEN_CACHE_DIR to a directory holding its files, or use mode='auto'"
            ) from exc
    cached = _cached_encoding(encoding)
    return TokenCounter(cached) if cached is not None else TokenCounter()
