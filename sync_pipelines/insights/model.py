"""The chat model that reads transcripts: any OpenAI-compatible `/chat/completions` server
(OpenAI, Azure-style gateways, vLLM, Ollama) by base URL, asked for structured output with a
JSON-schema `response_format`.

Failures follow the project's policy (`errors.classify`, `resilience.call_with_retries`; the
SDK's own retries are off): 429s wait out Retry-After, 5xx and timeouts are retried with
backoff and then end in InsightsModelError, 401/403 end the run at once (InsightsModelAuthError).
An answer that is not the schema's JSON is asked once more, then the call fails (never cached).
A refusal (`message.refusal`) is an answer, not an error: it is returned as such, not retried.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import openai
from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.errors import MalformedResponseError, PermanentError, Verdict, final_error
from sync_pipelines.http import require_json
from sync_pipelines.insights.schema import (
    RESPONSE_FORMAT,
    SCHEMA,
    SYSTEM_PROMPT,
    AnswerError,
    Extraction,
    messages,
    parse_answer,
)
from sync_pipelines.resilience import CallStats, call_with_retries

MODEL_ENV = "SYNC_INSIGHTS_MODEL"
MIN_PART_TOKENS = 1000
UNCONFIGURED = (
    f"no chat model configured: set {MODEL_ENV} (e.g. gpt-4o-mini) and its API key "
    "(SYNC_INSIGHTS_API_KEY, else OPENAI_API_KEY) to extract call insights"
)


class InsightsModelError(RuntimeError):
    """The chat model still failed after retries (5xx, timeouts, 429s, malformed answers)."""


class InsightsModelPermanentError(InsightsModelError, PermanentError):
    """The model's answer will not change on retry (a 4xx, a malformed answer twice)."""


class InsightsModelAuthError(InsightsModelPermanentError):
    """The model server rejected the credentials: every transcript would fail the same way."""


@dataclass
class Answer:
    """One call's outcome: an extraction, or the model's refusal text."""

    extraction: Extraction | None
    refusal: str | None = None


@dataclass
class ModelStats:
    """What the model cost, over every answered request (malformed and refused included)."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    refusals: int = 0
    malformed: int = 0
    http: CallStats = field(default_factory=CallStats)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


class ChatModel:
    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        max_output_tokens: int = 4096,
        timeout_s: float = 120.0,
        max_retries: int = 4,
    ):
        if not api_key:
            raise ValueError("the chat model needs an API key (any non-empty string without auth)")
        self.model = model
        self.max_output_tokens = max_output_tokens
        self.max_retries = max_retries
        self.stats = ModelStats()
        self._api_key = api_key
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )
        self.base_url = str(self._client.base_url)

    def extract(self, title: str, text: str, part: int = 1, parts: int = 1) -> Answer:
        """The model's insights for `text` (part `part` of `parts` of the call `title`)."""
        where = f"chat model {self.model!r} at {self.base_url}"

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> Exception:
            return final_error(
                f"{where}: POST chat/completions",
                exc,
                verdict,
                attempts,
                [self._api_key],
                error=InsightsModelError,
                permanent=InsightsModelPermanentError,
                auth=InsightsModelAuthError,
                auth_hint="check the chat model's API key",
            )

        weight = max(1, len(text) // 4)
        return call_with_retries(
            lambda: self._ask(messages(title, text, part, parts), weight),
            stats=self.stats.http,
            describe=describe,
            max_attempts=self.max_retries + 1,
            max_malformed_attempts=2,  # a bad answer is asked once more, then the call fails
            max_backoff_s=20.0,
        )

    def _ask(self, chat: list[dict], weight: int) -> Answer:
        raw = self._client.chat.completions.with_raw_response.create(
            model=self.model,
            messages=chat,
            response_format=RESPONSE_FORMAT,
            temperature=0,
            max_completion_tokens=self.max_output_tokens,
        )
        answer = raw.http_response
        require_json(answer)
        try:
            completion = raw.parse()
            choice = completion.choices[0]
            message = choice.message
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise self._malformed(f"not a chat completion ({type(exc).__name__})", answer) from exc
        usage = getattr(completion, "usage", None)
        self.stats.add(
            calls=1,
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        refusal = getattr(message, "refusal", None)
        if refusal:
            self.stats.add(refusals=1)
            return Answer(None, refusal=str(refusal))
        try:
            return Answer(parse_answer(message.content, weight))
        except AnswerError as exc:
            self.stats.add(malformed=1)
            cut = " (cut at max_output_tokens)" if choice.finish_reason == "length" else ""
            raise self._malformed(f"{exc}{cut}", answer) from None

    @staticmethod
    def _malformed(problem: str, answer) -> MalformedResponseError:
        return MalformedResponseError(
            problem,
            status=answer.status_code,
            content_type=answer.headers.get("content-type"),
            body=answer.content,
        )


def prompt_overhead_tokens(counter) -> int:
    """Tokens every request spends besides the transcript: the system prompt, the schema and
    the framing of the user turn, plus a margin for the chat format itself."""
    framing = messages("x" * 200, "", 99, 99)[1]["content"]
    return (
        counter.count(SYSTEM_PROMPT)
        + counter.count(json.dumps(SCHEMA))
        + counter.count(framing)
        + 64
    )


class ChatModelResource(ConfigurableResource):
    """The chat model call_insights asks; unset `model` means insights are off (the asset
    says so and keeps its place)."""

    model: str | None = Field(default=None, description=f"Chat model name ({MODEL_ENV}).")
    api_key: str | None = Field(default=None, description="Set through EnvVar.")
    base_url: str | None = Field(default=None, description="OpenAI-compatible base URL.")
    context_tokens: int = Field(
        default=128_000, description="The model's context window: longer calls are split."
    )
    max_output_tokens: int = Field(default=4096, description="Answer budget per request.")
    price_in_per_1m: float = Field(default=0.15, description="USD per 1M input tokens.")
    price_out_per_1m: float = Field(default=0.60, description="USD per 1M output tokens.")
    timeout_s: float = Field(default=120.0)
    max_retries: int = Field(default=4, description="Retries of 5xx and timeouts per request.")
    max_workers: int = Field(default=4, description="Requests in flight.")

    def unconfigured_reason(self) -> str | None:
        if not self.model:
            return UNCONFIGURED
        if not self.api_key:
            return f"chat model {self.model!r} has no API key: {UNCONFIGURED}"
        return None

    def build(self) -> ChatModel:
        reason = self.unconfigured_reason()
        if reason:
            raise ValueError(reason)
        return ChatModel(
            api_key=self.api_key or "",
            model=self.model or "",
            base_url=self.base_url,
            max_output_tokens=self.max_output_tokens,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )

    def part_budget(self, counter) -> int:
        """Transcript tokens one request may carry; a context that leaves less than
        MIN_PART_TOKENS once the prompt and the answer are counted is a configuration error
        (a call would cost hundreds of requests)."""
        overhead = prompt_overhead_tokens(counter)
        budget = self.context_tokens - self.max_output_tokens - overhead
        if budget < MIN_PART_TOKENS:
            raise ValueError(
                f"chat model context_tokens={self.context_tokens} leaves {budget} tokens for "
                f"the transcript after max_output_tokens={self.max_output_tokens} and the "
                f"prompt ({overhead}, counted by {counter.name}); at least {MIN_PART_TOKENS} "
                "are needed: raise context_tokens or lower max_output_tokens"
            )
        return budget

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_in_per_1m + tokens_out * self.price_out_per_1m) / 1e6
