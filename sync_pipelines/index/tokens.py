"""Token counting for chunk budgets and embedding limits, exact offline.

Chunks must be bounded by the embedding model's own tokens. tiktoken fetches its encoding
files over the network on first use, so when its cache lacks them we count with bpe-openai,
which ships cl100k_base and o200k_base inside its wheel (the same files tiktoken downloads,
byte for byte) and counts exactly as tiktoken does. Only when neither is available do we
bound tokens by the UTF-8 byte length: every cl100k/o200k token spans at least one byte, so
bytes >= tokens and a byte budget never overflows a token budget. Which counter ran is
recorded in `.name` so metrics can say so.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import tempfile

import tiktoken
import tiktoken_ext.openai_public

BYTES_NAME = "utf8-bytes"
MODES = ("auto", "tiktoken", "bpe-openai", "bytes")


class TokenCounter:
    """Counts and truncates text with a tiktoken-compatible encoding, or by UTF-8 bytes.

    `encoding` needs tiktoken's `encode(text, disallowed_special=())` and `decode_bytes`
    (tiktoken's and bpe-openai's Encoding both have them). Text the encoder refuses with one of
    `refusals` (bpe-openai: over a million characters or 200,000 tokens, as ValueError) is
    counted by its UTF-8 bytes, an upper bound, and truncated from a shorter prefix.
    """

    def __init__(
        self,
        encoding=None,
        name: str | None = None,
        refusals: tuple[type[Exception], ...] = (),
    ):
        self._encoding = encoding
        self._refusals = refusals
        if name is None:
            name = f"tiktoken:{encoding.name}" if encoding is not None else BYTES_NAME
        self.name = name

    def count(self, text: str) -> int:
        if self._encoding is None:
            return len(_utf8(text))
        try:
            return len(self._encoding.encode(text, disallowed_special=()))
        except self._refusals:
            return len(_utf8(text))

    def fits(self, text: str, max_tokens: int) -> bool:
        """count(text) <= max_tokens, without tokenizing text whose bytes already fit."""
        return _fits_by_bytes(text, max_tokens) or self.count(text) <= max_tokens

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of `text` (cut at a character boundary) within `max_tokens`."""
        if max_tokens <= 0:
            return ""
        if self._encoding is None:
            return _bytes_prefix(text, max_tokens)
        if _fits_by_bytes(text, max_tokens):
            return text
        while True:
            try:
                tokens = self._encoding.encode(text, disallowed_special=())
                break
            except self._refusals:
                # Too long to encode: a prefix of a prefix is still a prefix, and half of a
                # text with 200,000 tokens still holds far more than any budget here.
                text = text[: len(text) // 2]
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


def _fits_by_bytes(text: str, max_tokens: int) -> bool:
    """Every token spans at least one byte (a character at most four): short text fits."""
    return len(text) * 4 <= max_tokens or len(_utf8(text)) <= max_tokens


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
    paths = [os.path.join(cache_dir, hashlib.sha1(u.encode()).hexdigest()) for u in _urls(encoding)]
    if not paths or not all(os.path.exists(p) for p in paths):
        return None
    try:
        return tiktoken.get_encoding(encoding)
    # A corrupt cache file makes tiktoken try the network (which fails in any way): fall back.
    except Exception:  # noqa: BLE001
        return None


def _urls(encoding: str) -> list[str]:
    constructor = tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[encoding]
    return [c for c in constructor.__code__.co_consts if isinstance(c, str) and "://" in c]


def _tiktoken_cache_dir() -> str:
    """Where tiktoken keeps its files, by its own rules ("" disables its cache)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def bpe_openai_ships(encoding: str) -> bool:
    """Whether bpe-openai has `encoding`'s ranks in its wheel (for others it would call
    tiktoken, and so the network)."""
    try:
        data = importlib.resources.files("bpe_openai.data")
    except ModuleNotFoundError:
        return False
    return data.joinpath(f"{encoding}.tiktoken.gz").is_file()


def _bpe_openai_counter(encoding: str) -> TokenCounter:
    if not bpe_openai_ships(encoding):
        raise RuntimeError(
            f"bpe-openai does not ship encoding {encoding!r} (it has cl100k_base and o200k_base); "
            "is the bpe-openai package installed?"
        )
    import bpe_openai

    return TokenCounter(
        bpe_openai.get_encoding(encoding), name=f"bpe-openai:{encoding}", refusals=(ValueError,)
    )


@functools.cache
def token_counter(encoding: str = "cl100k_base", mode: str = "auto") -> TokenCounter:
    """The process-wide counter. `auto`: tiktoken when its files are cached, else bpe-openai
    (exact, offline) when it ships the encoding, else the UTF-8 byte bound.

    `tiktoken` forces tiktoken (downloading the encoding if needed, raising if that fails);
    `bpe-openai` forces bpe-openai (raising if it lacks the encoding); `bytes` forces the
    byte bound.
    """
    if mode not in MODES:
        raise ValueError(f"unknown token counter mode {mode!r}; expected one of {MODES}")
    if mode == "bytes":
        return TokenCounter()
    if mode == "bpe-openai":
        return _bpe_openai_counter(encoding)
    if mode == "tiktoken":
        try:
            return TokenCounter(tiktoken.get_encoding(encoding))
        except Exception as exc:
            raise RuntimeError(
                f"tiktoken could not load encoding {encoding!r} ({type(exc).__name__}); "
                "set TIKTOKEN_CACHE_DIR to a directory holding its files, or use mode='auto'"
            ) from exc
    cached = _cached_encoding(encoding)
    if cached is not None:
        return TokenCounter(cached)
    if bpe_openai_ships(encoding):
        return _bpe_openai_counter(encoding)
    return TokenCounter()
