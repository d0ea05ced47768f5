"""Split documents into token-bounded, overlapping chunks with stable ids and content hashes.

The vector id `doc_id#chunk_n` is stable across re-syncs, so an unchanged document maps onto
the same ids. Two hashes tell the ledger what changed: the content hash (embedder, text) says
which ids need embedding again, the metadata hash which only need their stored metadata
replaced (an access list narrowed upstream, a new URL): that costs no embedding.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import re
from collections import deque
from dataclasses import dataclass, field

from sync_pipelines.documents import Document
from sync_pipelines.index.tokens import TokenCounter, token_counter

# Split points, coarsest first. Each pattern marks where a piece starts, so whitespace opens the
# next piece (" word", as BPE tokenizers see it) and punctuation stays with its sentence.
_SEPARATORS = [
    re.compile(r"\n[ \t\r\f\v]*\n\s*"),  # blank line: paragraphs
    re.compile(r"\n"),  # lines
    re.compile(r"(?<=[.!?…])(?=\s)|(?<=[。！？；])(?=.)", re.DOTALL),  # sentences, CJK ones too
    re.compile(r"(?<=\S)(?=\s)"),  # words
]
_WORD_STARTS = re.compile(r"(?:^|(?<=\s))\S")
_HARD_CUT_CHARS_PER_TOKEN = 16  # window for hard cuts: keeps tiktoken work linear in length

# Defaults of the chunk budget (SYNC_CHUNK_TOKENS, SYNC_CHUNK_OVERLAP): small enough that a
# chunk says one thing, large enough that a chat thread or a ticket is one or two chunks.
DEFAULT_CHUNK_TOKENS = 256
DEFAULT_CHUNK_OVERLAP = 32
# The title repeated atop every chunk is paid for on every chunk: it gets a few tokens only,
# and never more than a quarter of a small budget.
TITLE_MAX_TOKENS = 16
_TITLE_SHARE = 4


@dataclass(frozen=True)
class Chunk:
    vector_id: str
    doc_id: str
    chunk_n: int
    text: str
    content_hash: str  # of what is embedded: the embedder and the text
    metadata: dict = field(default_factory=dict)
    metadata_hash: str = ""  # of the stored metadata, text and HASH_EXEMPT fields aside
    doc_time: float | None = None  # the document's partition time (Listing ranges judge it)


class TextSplitter:
    """Recursive, token-aware splitter: paragraphs, lines, sentences, words, then hard cuts.

    No chunk ever exceeds `chunk_tokens` as measured by `counter`; consecutive chunks share
    up to `overlap_tokens` of text (whole words where possible) so a sentence cut at a chunk
    edge is still findable from either side.
    """

    def __init__(
        self,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        overlap_tokens: int = DEFAULT_CHUNK_OVERLAP,
        counter: TokenCounter | None = None,
    ):
        if chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
        if not 0 <= overlap_tokens <= chunk_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be between 0 and chunk_tokens/2 ({chunk_tokens // 2}), "
                f"got {overlap_tokens}"
            )
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.counter = counter or token_counter()

    def split(self, text: str, prefix: str = "") -> list[str]:
        """Chunks of `text`, each starting with `prefix` and within the token budget."""
        if not text.strip():
            return []
        whole = prefix + text.strip()
        if self.counter.fits(whole, self.chunk_tokens):  # most chat messages and tickets
            return [whole]
        budget = self.chunk_tokens - self.counter.count(prefix)
        if budget < 4:  # one character can take up to 4 tokens
            raise ValueError(f"prefix leaves {budget} tokens of a {self.chunk_tokens} budget")
        # Pieces leave room for the overlap, so even a hard-cut run of text can carry one.
        piece_budget = max(4, budget - self.overlap_tokens)
        units = deque((u, self.counter.count(u)) for u in self._units(text, piece_budget, 0))
        chunks: list[str] = []
        previous = ""
        while units:
            body = [units.popleft()]
            overlap = self._tail(previous, min(self.overlap_tokens, budget - body[0][1]))
            used = self.counter.count(overlap) + body[0][1]
            while units and used + units[0][1] <= budget:
                used += units[0][1]
                body.append(units.popleft())
            if not "".join(u for u, _ in body).strip():
                # Only whitespace is new: a chunk of it would repeat the overlap. Keep it
                # for the next overlap, so chunks stay verbatim pieces of the text.
                previous += "".join(u for u, _ in body)
                continue
            chunk, previous = self._fit(prefix, overlap, body, units)
            chunks.append(chunk)
        return chunks

    def _fit(self, prefix: str, overlap: str, body: list, units: deque) -> tuple[str, str]:
        """The chunk text and its raw span, giving back pieces (then the overlap) till it fits.

        Summed piece counts are estimates under BPE; the joined text is what must fit.
        """
        while True:
            raw = overlap + "".join(u for u, _ in body)
            chunk = prefix + raw.strip()
            if self.counter.fits(chunk, self.chunk_tokens):
                return chunk, raw
            if len(body) > 1:
                units.appendleft(body.pop())
            elif overlap:
                overlap = ""
            else:
                raise RuntimeError(
                    f"{self.counter.name} counts {chunk[:60]!r}... over {self.chunk_tokens} "
                    "tokens although its pieces fit"
                )

    def _units(self, text: str, budget: int, level: int):
        """Pieces of `text` that each fit the budget, in order, concatenating back to `text`."""
        if self.counter.fits(text, budget):
            yield text
            return
        if level == len(_SEPARATORS):
            yield from self._hard_cut(text, budget)
            return
        starts = sorted({m.start() for m in _SEPARATORS[level].finditer(text)} - {0, len(text)})
        if not starts:
            yield from self._units(text, budget, level + 1)
            return
        bounds = [0, *starts, len(text)]
        for start, end in itertools.pairwise(bounds):
            yield from self._units(text[start:end], budget, level + 1)

    def _hard_cut(self, text: str, budget: int):
        """Cut a single over-long word (a huge URL, unspaced CJK text) at character boundaries."""
        window = budget * _HARD_CUT_CHARS_PER_TOKEN
        rest = text
        while rest:
            piece = self.counter.truncate(rest[:window], budget)
            yield piece
            rest = rest[len(piece) :]

    def _tail(self, text: str, max_tokens: int) -> str:
        """The longest end of `text` within `max_tokens`, starting at a word if one fits.

        `text` is contiguous with the next piece, so tail + piece is a substring of the input.
        """
        if max_tokens <= 0 or not text.strip():
            return ""
        starts = [m.start() for m in _WORD_STARTS.finditer(text)]
        if starts and self.counter.fits(text[starts[-1] :], max_tokens):
            return text[_first_fitting(starts, text, max_tokens, self.counter) :]
        # No whole word fits (unspaced text, a long URL): take characters instead.
        positions = range(max(0, len(text) - max_tokens * 4), len(text))
        return text[_first_fitting(positions, text, max_tokens, self.counter) :]


def _first_fitting(starts, text: str, max_tokens: int, counter: TokenCounter) -> int:
    """The earliest start whose suffix fits, by binary search (suffix counts shrink with start)."""
    lo, hi = 0, len(starts)
    while lo < hi:
        mid = (lo + hi) // 2
        if counter.fits(text[starts[mid] :], max_tokens):
            hi = mid
        else:
            lo = mid + 1
    return starts[lo] if lo < len(starts) else len(text)


# When a document is edited, the chunks whose text is unchanged keep their stored metadata
# unless a field that matters changed; its edit time alone changes on every chunk, so it does
# not count (it is refreshed with the chunk's next real change).
HASH_EXEMPT = frozenset({"updated_at"})


def chunk_document(
    doc: Document,
    splitter: TextSplitter,
    embedder_signature: str,
    doc_time: float | None = None,
) -> list[Chunk]:
    """Chunks of one document, titled for retrieval (so a new title is a new text), with
    store-safe metadata and both hashes; `doc_time` is its partition time, kept in the ledger."""
    if not doc.text.strip():
        return []
    base = _document_metadata(doc)
    meta_hash = metadata_hash(base)
    chunks = []
    for n, text in enumerate(splitter.split(doc.text, _title_prefix(doc, splitter))):
        chunks.append(
            Chunk(
                vector_id=f"{doc.doc_id}#{n}",
                doc_id=doc.doc_id,
                chunk_n=n,
                text=text,
                content_hash=content_hash(embedder_signature, text),
                metadata={**base, "chunk_n": n, "text": text},
                metadata_hash=meta_hash,
                doc_time=doc_time,
            )
        )
    return chunks


def content_hash(embedder_signature: str, text: str) -> str:
    """What decides re-embedding: the same text under the same embedder is the same vector."""
    return _sha256([embedder_signature, text])


def metadata_hash(metadata: dict) -> str:
    return _sha256({k: v for k, v in metadata.items() if k not in HASH_EXEMPT})


def legacy_content_hash(embedder_signature: str, chunk: Chunk) -> str:
    """The one hash ledgers written before metadata hashes existed hold (embedder, text and
    metadata together): a chunk that still matches it needs neither embedding nor update."""
    metadata = {k: v for k, v in chunk.metadata.items() if k not in HASH_EXEMPT}
    return _sha256([embedder_signature, chunk.text, metadata])


def _sha256(value) -> str:
    payload = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def _title_prefix(doc: Document, splitter: TextSplitter) -> str:
    """The title on its own line, so every chunk says what it belongs to.

    Skipped when there is no title or the text already opens with it (page bodies often do).
    A long title is cut to TITLE_MAX_TOKENS at a word boundary: repeated in every chunk, a
    full ticket summary or e-mail subject would cost more embedded tokens than it helps.
    """
    title = " ".join((doc.title or "").split())
    if not title or doc.text.lstrip().startswith(title):
        return ""
    budget = min(TITLE_MAX_TOKENS, splitter.chunk_tokens // _TITLE_SHARE)
    cut = splitter.counter.truncate(title, budget)
    if cut != title and " " in cut and not title[len(cut)].isspace():
        cut = cut.rsplit(" ", 1)[0]  # drop the partial last word
    cut = cut.strip()
    return f"{cut}\n\n" if cut else ""


def _document_metadata(doc: Document) -> dict:
    """Flat metadata every store accepts; the core fields win over source fields of that name.

    Access entries are lower-cased and sorted: search matches lower-cased identities, and the
    order of a document's readers must not change its hash.
    """
    extra = {k: _store_value(v) for k, v in doc.metadata.items() if v is not None}
    core = {
        "doc_id": doc.doc_id,
        "source": doc.source,
        "connection": doc.connection,
        "title": doc.title,
        "url": doc.url,
        "author": doc.author,
        "timestamp_epoch": _store_value(doc.timestamp_epoch),
        "access": sorted({str(a).strip().lower() for a in doc.access if str(a).strip()}),
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }
    return {**extra, **{k: v for k, v in core.items() if v is not None}}


def _store_value(value):
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)
