"""Token counting, splitting and chunk identity: budgets hold, nothing is lost, stable hashes."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken

from sync_pipelines.documents import Document
from sync_pipelines.index.chunking import TITLE_MAX_TOKENS, TextSplitter, chunk_document
from sync_pipelines.index.tokens import TokenCounter, token_counter

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
SIGNATURE = "hashing-v1:384"


def tiny_bpe() -> TokenCounter:
    """A real tiktoken Encoding with a toy vocabulary: tiktoken code paths, no download.

    Multi-byte characters take several tokens here, so truncation must mend split characters.
    """
    ranks = {bytes([i]): i for i in range(256)}
    for merge in [
        b"th",
        b"he",
        b"the",
        b" t",
        b" th",
        b" the",
        b"in",
        b"ng",
        b"ing",
        b"er",
        b"an",
        b"on",
        b" a",
        b"//",
        b"ww",
        b"www",
        b"\n\n",
    ]:
        ranks[merge] = len(ranks)
    encoding = tiktoken.Encoding(
        name="tiny", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    return TokenCounter(encoding)


# The byte bound, tiktoken's code paths on a toy vocabulary, and the real cl100k_base offline.
COUNTERS = {
    "bytes": TokenCounter(),
    "tiktoken": tiny_bpe(),
    "cl100k": token_counter("cl100k_base", "bpe-openai"),
}


def prose(rng: random.Random, paragraphs: int) -> str:
    words = [
        f"{rng.choice(['the', 'ring', 'anchor', 'data', 'sync'])}{rng.randrange(10**6)}"
        for _ in range(paragraphs * 60)
    ]
    out = []
    for p in range(paragraphs):
        sentences = [
            " ".join(words[p * 60 + s * 12 : p * 60 + (s + 1) * 12]) + rng.choice(".!?")
            for s in range(5)
        ]
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def cjk(rng: random.Random, chars: int) -> str:
    return "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(chars))


def corpus() -> dict[str, str]:
    rng = random.Random(7)
    return {
        "prose": prose(rng, 8),
        "one_huge_paragraph": prose(rng, 4).replace("\n\n", " "),
        "lines": "\n".join(prose(rng, 1)[:80] + str(i) for i in range(60)),
        "cjk_no_spaces": cjk(rng, 3000),
        "cjk_sentences": "。".join(cjk(rng, 40) for _ in range(40)),
        "long_url": "see https://example.com/"
        + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789/-_") for _ in range(12_000))
        + " for details",
        "emoji_mix": " ".join(f"ok👍{i} façade naïve 🚀🚀🚀" for i in range(400)),
    }


def assert_covers(text: str, chunks: list[str]) -> None:
    """Chunks are pieces of the text, each reaching past the last, covering every character."""
    covered = [False] * len(text)
    start, end = 0, 0
    for chunk in chunks:
        start = text.find(chunk, start)
        while start >= 0 and start + len(chunk) <= end:
            start = text.find(chunk, start + 1)
        assert start >= 0, f"chunk is not a next piece of the text: {chunk[:80]!r}"
        end = start + len(chunk)
        covered[start:end] = [True] * len(chunk)
    missing = [i for i, c in enumerate(covered) if not c and not text[i].isspace()]
    assert not missing, f"text lost at {missing[:5]}: {text[missing[0] : missing[0] + 40]!r}"


def shared_edge(first: str, second: str) -> str:
    for size in range(min(len(first), len(second)), 0, -1):
        if first.endswith(second[:size]):
            return second[:size]
    return ""


@pytest.mark.parametrize("counter_name", COUNTERS)
@pytest.mark.parametrize("kind", list(corpus()))
@pytest.mark.parametrize("chunk_tokens,overlap_tokens", [(400, 40), (64, 16), (12, 2)])
def test_budget_never_exceeded_and_nothing_lost(counter_name, kind, chunk_tokens, overlap_tokens):
    counter = COUNTERS[counter_name]
    text = corpus()[kind]
    chunks = TextSplitter(chunk_tokens, overlap_tokens, counter).split(text)
    assert chunks
    assert all(c.strip() == c and c for c in chunks)
    assert max(counter.count(c) for c in chunks) <= chunk_tokens
    assert_covers(text, chunks)


@pytest.mark.parametrize("counter_name", COUNTERS)
@pytest.mark.parametrize("kind", ["prose", "one_huge_paragraph", "cjk_no_spaces", "long_url"])
def test_consecutive_chunks_overlap_within_budget(counter_name, kind):
    counter = COUNTERS[counter_name]
    chunks = TextSplitter(64, 16, counter).split(corpus()[kind])
    assert len(chunks) > 3
    for first, second in itertools.pairwise(chunks):
        edge = shared_edge(first, second)
        assert edge.strip(), f"no overlap between {first[-30:]!r} and {second[:30]!r}"
        assert counter.count(edge) <= 16 + 2  # + the whitespace around a word edge


def test_prose_overlap_starts_at_a_word():
    text = corpus()["one_huge_paragraph"]
    chunks = TextSplitter(64, 16, TokenCounter()).split(text)
    for chunk in chunks[1:]:
        start = text.find(chunk)
        assert start == 0 or text[start - 1].isspace()


def test_paragraphs_kept_whole_when_they_fit():
    paragraphs = [f"Paragraph {i} talks about topic {i} in a short way." for i in range(6)]
    chunks = TextSplitter(60, 0, TokenCounter()).split("\n\n".join(paragraphs))
    assert chunks == paragraphs  # 47 bytes each: one per chunk, never cut mid-paragraph


def test_small_text_is_one_chunk():
    assert TextSplitter(400, 40, TokenCounter()).split("  hello world \n") == ["hello world"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t "])
def test_empty_text_has_no_chunks(text):
    assert TextSplitter().split(text) == []


def test_splitter_rejects_bad_budgets():
    with pytest.raises(ValueError, match="chunk_tokens"):
        TextSplitter(4, 0)
    with pytest.raises(ValueError, match="overlap_tokens"):
        TextSplitter(100, 60)


@pytest.mark.parametrize("counter_name", COUNTERS)
def test_truncate_cuts_at_character_boundaries(counter_name):
    counter = COUNTERS[counter_name]
    text = "naïve 日本語 👍🚀 text " * 20
    for limit in range(80):
        cut = counter.truncate(text, limit)
        assert text.startswith(cut)
        assert counter.count(cut) <= limit
    assert counter.truncate(text, 10_000) == text


def test_counter_names():
    assert TokenCounter().name == "utf8-bytes"
    assert COUNTERS["tiktoken"].name == "tiktoken:tiny"
    assert COUNTERS["cl100k"].name == "bpe-openai:cl100k_base"


def make_doc(**changes) -> Document:
    fields = {
        "doc_id": "slack:acme:C1-1700000000.000100",
        "source": "slack",
        "connection": "acme",
        "title": "#eng-private",
        "text": prose(random.Random(3), 3),
        "url": "https://acme.slack.com/archives/C1/p1700000000000100",
        "author": "ana@acme.test",
        "created_at": "2023-11-14T22:13:20+00:00",
        "updated_at": "2023-11-14T22:13:20+00:00",
        "timestamp_epoch": 1700000000.0001,
        "access": ("Ana@Acme.test", "bo@acme.test"),
        "metadata": {
            "channel_id": "C1",
            "reply_count": 3,
            "thread": None,
            "tags": ["a", "b"],
            "nested": {"k": 1},
            "ratio": float("nan"),
            "access": ["all"],  # a source field must never override the real access list
        },
    }
    fields.update(changes)
    return Document(**fields)


SPLITTER = TextSplitter(64, 8, TokenCounter())


def test_chunk_ids_metadata_and_title_prefix():
    chunks = chunk_document(make_doc(), SPLITTER, SIGNATURE)
    assert len(chunks) > 2
    assert [c.vector_id for c in chunks] == [f"{c.doc_id}#{n}" for n, c in enumerate(chunks)]
    assert all(c.text.startswith("#eng-private\n\n") for c in chunks)
    assert all(TokenCounter().count(c.text) <= 64 for c in chunks)
    meta = chunks[1].metadata
    assert meta["access"] == ["ana@acme.test", "bo@acme.test"]
    assert meta["chunk_n"] == 1 and meta["doc_id"] == chunks[1].doc_id
    assert meta["text"] == chunks[1].text
    assert meta["channel_id"] == "C1" and meta["reply_count"] == 3 and meta["tags"] == ["a", "b"]
    assert "thread" not in meta
    assert meta["nested"] == '{"k": 1}' and meta["ratio"] == "nan"
    for key in (
        "source",
        "connection",
        "title",
        "url",
        "author",
        "timestamp_epoch",
        "created_at",
        "updated_at",
    ):
        assert key in meta
    json.dumps(meta, allow_nan=False)  # flat and store-safe


def test_long_title_is_cut_to_a_few_tokens_at_a_word_boundary():
    counter = COUNTERS["cl100k"]
    title = (
        "SUBS-121: Migrate every recurring subscription plan from the legacy billing provider "
        "to the new payment platform before the end of the quarter"
    )
    chunks = chunk_document(make_doc(title=title), TextSplitter(256, 32, counter), SIGNATURE)
    header = chunks[0].text.split("\n\n", 1)[0]
    assert all(c.text.startswith(header + "\n\n") for c in chunks)
    assert title.startswith(header) and title[len(header)] == " "  # whole words only
    assert 8 <= counter.count(header) <= TITLE_MAX_TOKENS
    # A short title is kept whole; a small budget gives it at most a quarter.
    short = chunk_document(make_doc(), TextSplitter(256, 32, counter), SIGNATURE)
    assert short[0].text.startswith("#eng-private\n\n")
    tiny = chunk_document(make_doc(title=title), TextSplitter(24, 4, counter), SIGNATURE)
    assert counter.count(tiny[0].text.split("\n\n", 1)[0]) <= 24 // 4


def test_title_not_repeated_when_text_opens_with_it():
    doc = make_doc(title="Runbook", text="Runbook\n\nStep one: restart the sync.")
    (chunk,) = chunk_document(doc, SPLITTER, SIGNATURE)
    assert chunk.text == "Runbook\n\nStep one: restart the sync."


def test_empty_document_has_no_chunks():
    assert chunk_document(make_doc(text=" \n "), SPLITTER, SIGNATURE) == []


def test_hashes_stable_in_process_and_sensitive_to_what_matters():
    base = chunk_document(make_doc(), SPLITTER, SIGNATURE)
    again = chunk_document(make_doc(), SPLITTER, SIGNATURE)
    assert [c.content_hash for c in base] == [c.content_hash for c in again]
    assert len({c.content_hash for c in base}) == len(base)

    def hashes(doc=None, signature=SIGNATURE):
        return [c.content_hash for c in chunk_document(doc or make_doc(), SPLITTER, signature)]

    def metadata_hashes(doc=None):
        return {c.metadata_hash for c in chunk_document(doc or make_doc(), SPLITTER, SIGNATURE)}

    original = hashes()
    # A new access list is a metadata change: same vectors, new stored metadata.
    assert hashes(make_doc(access=("all",))) == original
    assert metadata_hashes(make_doc(access=("all",))).isdisjoint(metadata_hashes())
    assert metadata_hashes(make_doc(url="https://elsewhere.test/x")).isdisjoint(metadata_hashes())
    assert all(a != b for a, b in zip(original, hashes(signature="openai:x:1536")))
    # Access order and case do not matter; the text does, chunk by chunk.
    assert hashes(make_doc(access=("bo@acme.test", "ANA@acme.test"))) == original
    reordered = make_doc(access=("bo@acme.test", "ANA@acme.test"))
    assert metadata_hashes(reordered) == metadata_hashes()
    # The edit time alone is no change at all.
    assert metadata_hashes(make_doc(updated_at="2030-01-01T00:00:00+00:00")) == metadata_hashes()
    text = make_doc().text
    edited = hashes(make_doc(text=text[:-20] + "changed at the end."))
    assert edited[0] == original[0] and edited[-1] != original[-1]


def test_hashes_stable_across_processes():
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from test_index_chunking import make_doc, SPLITTER, SIGNATURE\n"
        "from sync_pipelines.index.chunking import chunk_document\n"
        "print([c.content_hash for c in chunk_document(make_doc(), SPLITTER, SIGNATURE)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    here = [c.content_hash for c in chunk_document(make_doc(), SPLITTER, SIGNATURE)]
    assert out.strip() == str(here)
