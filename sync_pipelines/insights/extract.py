"""Insights for a batch of transcripts: each split to fit the model's context, each part
answered from the cache or by the model (a few requests in flight), the parts merged.

A transcript whose parts were all answered has an extraction; one whose model refused a part
has a refusal; one whose request failed after the client's retries has an error and is tried
again by a later run. Parts answered well are cached even when a sibling part failed, so the
retry pays only for what is missing. An authentication error stops the batch: every other
transcript would fail the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sync_pipelines.documents import Document
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.insights.cache import InsightCache, cache_key
from sync_pipelines.insights.model import Answer, ChatModel, InsightsModelAuthError
from sync_pipelines.insights.schema import PROMPT_VERSION, Extraction, user_message
from sync_pipelines.insights.split import merge, split_transcript


@dataclass
class Outcome:
    extraction: Extraction | None = None
    refusal: str | None = None
    error: str | None = None


@dataclass
class BatchStats:
    transcripts: int = 0
    parts: int = 0
    split_transcripts: int = 0  # transcripts longer than one request
    cache_hits: int = 0
    extracted: int = 0
    refused: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    doc_id: str
    index: int
    title: str
    text: str
    parts: int
    key: str


class Extractor:
    def __init__(
        self,
        model: ChatModel,
        cache: InsightCache,
        counter: TokenCounter,
        part_budget: int,
        max_workers: int = 4,
        prompt_version: str = PROMPT_VERSION,
    ):
        self.model = model
        self.cache = cache
        self.counter = counter
        self.part_budget = part_budget
        self.max_workers = max(1, max_workers)
        self.prompt_version = prompt_version
        self.stats = BatchStats()

    def run(self, docs: Sequence[Document]) -> dict[str, Outcome]:
        """An Outcome per transcript (by doc_id)."""
        answers: dict[str, list[Extraction | None]] = {}
        outcomes: dict[str, Outcome] = {}
        jobs: list[_Job] = []
        for doc in docs:
            parts = split_transcript(doc.text, self.part_budget, self.counter)
            self.stats.transcripts += 1
            self.stats.parts += len(parts)
            self.stats.split_transcripts += len(parts) > 1
            answers[doc.doc_id] = [None] * len(parts)
            for n, part in enumerate(parts):
                sent = user_message(doc.title, part, n + 1, len(parts))
                key = cache_key(sent, self.model.model, self.prompt_version)
                cached = self.cache.get(key)
                if cached is not None:
                    self.stats.cache_hits += 1
                    answers[doc.doc_id][n] = cached
                else:
                    jobs.append(_Job(doc.doc_id, n, doc.title, part, len(parts), key))
        for job, answer, error in self._ask(jobs):
            outcome = outcomes.setdefault(job.doc_id, Outcome())
            if error is not None:
                outcome.error = outcome.error or error
            elif answer.refusal is not None:
                outcome.refusal = outcome.refusal or answer.refusal
            else:
                extraction = answer.extraction
                self.cache.put(job.key, extraction)
                answers[job.doc_id][job.index] = extraction
        for doc_id, parts in answers.items():
            outcome = outcomes.setdefault(doc_id, Outcome())
            if outcome.error is not None:
                self.stats.failed += 1
                self.stats.errors.append(f"{doc_id}: {outcome.error}")
            elif outcome.refusal is not None:
                self.stats.refused += 1
            else:
                outcome.extraction = merge([p for p in parts if p is not None])
                self.stats.extracted += 1
        return outcomes

    def _ask(self, jobs: list[_Job]):
        """(job, answer, error text) for every job, as they finish; an auth error is raised."""
        if not jobs:
            return
        pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="call-insights")
        try:
            futures = {
                pool.submit(self.model.extract, j.title, j.text, j.index + 1, j.parts): j
                for j in jobs
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    job = futures[future]
                    try:
                        answer: Answer = future.result()
                    except InsightsModelAuthError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - one transcript's failure
                        yield job, None, f"{type(exc).__name__}: {exc}"
                        continue
                    yield job, answer, None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
