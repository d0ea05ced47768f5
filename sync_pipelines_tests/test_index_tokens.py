"""Token counters: exact cl100k/o200k counts with no network (bpe-openai), tiktoken when its cache
holds the files, the UTF-8 byte bound as the last fallback."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import random

import pytest
import tiktoken
import tiktoken_ext.openai_public

from sync_pipelines.index.tokens import (
    TokenCounter,
    bpe_openai_ships,
    token_counter,
)

ENCODINGS = ["cl100k_base", "o200k_base"]
SAMPLE_WORDS = (
    "the billing migration moves subscriptions to the new payment provider SUBS-121 "
    "https://acme.atlassian.net/browse/SUBS-121?focus=1 don't I'll we've They'RE 12345678 "
    "3.14159 naïve façade 東京 👩\u200d💻"
)


def tiktoken_cache_from_bpe_openai(directory, encoding: str) -> None:
    """Lay out a tiktoken cache (files named sha1(url)) from the rank file bpe-openai ships.

    tiktoken checks each cached file against the SHA-256 its constructor hard-codes, so an
    encoding loaded from this cache is OpenAI's own, byte for byte, or it fails to load.
    """
    data = gzip.decompress(
        importlib.resources.files("bpe_openai.data")
        .joinpath(f"{encoding}.tiktoken.gz")
        .read_bytes()
    )
    constructor = tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[encoding]
    (url,) = [c for c in constructor.__code__.co_consts if isinstance(c, str) and "://" in c]
    (expected,) = [c for c in constructor.__code__.co_consts if isinstance(c, str) and len(c) == 64]
    assert hashlib.sha256(data).hexdigest() == expected, "bpe-openai ships other ranks"
    (directory / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tiktoken.Encoding]:
    """tiktoken's own encodings, loaded offline from a cache built out of bpe-openai's files."""
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for encoding in ENCODINGS:
        tiktoken_cache_from_bpe_openai(cache, encoding)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        return {e: tiktoken.get_encoding(e) for e in ENCODINGS}


def sample_texts() -> list[str]:
    """Text the pretokenizer and the merges find hard: accents, CJK, emoji with modifiers,
    contractions, digit runs, whitespace runs, CRLF, code, special-token look-alikes."""
    rng = random.Random(14)
    alphabet = (
        "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 \n\n\t.,;:!?'\"()[]{}<>/\\-_=+*&^%$#@~`|"
        "éèüßøñçÀ日本語の中文字한국어🙂👍🏽🚀—…“”«»\u200b\r"
    )
    words = [*SAMPLE_WORDS.split(" "), "def foo(x):\n    return x**2"]
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.choice([3, 40, 400]))) for _ in range(600)
    ]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 120))) for _ in range(600)]
    texts += ["", " ", "\n" * 40, " " * 1000, "a" * 3000, "'s'S'LL", "<|endoftext|> x", "x\r\ny"]
    return texts


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_bpe_openai_counts_exactly_as_tiktoken(reference, encoding):
    counter = token_counter(encoding, "bpe-openai")
    assert counter.name == f"bpe-openai:{encoding}"
    texts = sample_texts()
    mismatches = [
        t
        for t in texts
        if counter.count(t) != len(reference[encoding].encode(t, disallowed_special=()))
    ]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, e.g. {mismatches[0][:80]!r}"


def test_bpe_openai_truncates_at_character_boundaries_like_tiktoken(reference):
    bpe = token_counter("cl100k_base", "bpe-openai")
    exact = TokenCounter(reference["cl100k_base"])
    text = "naïve 日本語 👍🏽🚀 SUBS-121 text " * 20
    for limit in range(90):
        cut = bpe.truncate(text, limit)
        assert text.startswith(cut) and bpe.count(cut) <= limit
        assert cut == exact.truncate(text, limit)
    assert bpe.truncate(text, 10_000) == text


@pytest.mark.parametrize(
    "text",
    [
        "word " * 200_010,  # over a million characters
        "日本語テキスト" * 40_000,  # 280,000 characters, over 200,000 tokens
    ],
)
def test_text_bpe_openai_refuses_is_bounded_by_bytes(text):
    counter = token_counter("cl100k_base", "bpe-openai")
    assert counter.count(text) == len(text.encode())  # an upper bound, never an error
    assert counter.fits(text, 10**7) and not counter.fits(text, 100_000)
    cut = counter.truncate(text, 50)
    assert text.startswith(cut) and 45 <= counter.count(cut) <= 50


def test_auto_uses_bpe_openai_when_tiktokens_cache_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert token_counter.__wrapped__("cl100k_base", "auto").name == "bpe-openai:cl100k_base"
    assert token_counter.__wrapped__("o200k_base", "auto").name == "bpe-openai:o200k_base"
    # An encoding bpe-openai does not ship falls back to the byte bound, never to the network.
    assert not bpe_openai_ships("r50k_base")
    assert token_counter.__wrapped__("r50k_base", "auto").name == "utf8-bytes"


def test_auto_prefers_tiktoken_when_its_cache_holds_the_files(tmp_path, monkeypatch):
    tiktoken_cache_from_bpe_openai(tmp_path, "cl100k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    counter = token_counter.__wrapped__("cl100k_base", "auto")
    assert counter.name == "tiktoken:cl100k_base"
    text = "payment system cutover für wiederkehrende Pläne 🚀"
    assert counter.count(text) == token_counter("cl100k_base", "bpe-openai").count(text)
    assert counter.count(text) < len(text.encode())


def test_forced_modes_and_bad_modes():
    assert token_counter(mode="bytes").name == "utf8-bytes"
    assert TokenCounter().count("日本") == 6
    with pytest.raises(RuntimeError, match="does not ship encoding 'r50k_base'"):
        token_counter("r50k_base", "bpe-openai")
    with pytest.raises(ValueError, match="mode"):
        token_counter(mode="guess")


@pytest.mark.parametrize("mode", ["bytes", "bpe-openai"])
def test_fits_agrees_with_count(mode):
    counter = token_counter("cl100k_base", mode)
    for text in sample_texts()[::7]:
        for limit in (0, 1, 5, 40, 400):
            assert counter.fits(text, limit) == (counter.count(text) <= limit), (text[:40], limit)
