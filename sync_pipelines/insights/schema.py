"""What the chat model is asked and what it must answer: the prompt, the JSON schema of its
structured output, and the parser that turns an answer into an Extraction.

PROMPT_VERSION is part of every cache key: change it whenever the prompt or the schema change,
so cached answers to the old question are not reused for the new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PROMPT_VERSION = "insights-v1"
KINDS = ("feature", "pain_point", "objection", "competitor", "action_item")
SENTIMENTS = ("positive", "neutral", "negative", "mixed")
SENTIMENT_KIND = "sentiment"  # the table's row of a call's overall sentiment
SCHEMA_NAME = "call_insights"

SCHEMA: dict = {
    "type": "object",
    "properties": {
        "insights": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": list(KINDS)},
                    "value": {"type": "string"},
                    "quote": {"type": "string"},
                    "owner": {"type": ["string", "null"]},
                },
                "required": ["kind", "value", "quote", "owner"],
                "additionalProperties": False,
            },
        },
        "sentiment": {"type": "string", "enum": list(SENTIMENTS)},
        "sentiment_quote": {"type": "string"},
    },
    "required": ["insights", "sentiment", "sentiment_quote"],
    "additionalProperties": False,
}

RESPONSE_FORMAT: dict = {
    "type": "json_schema",
    "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": SCHEMA},
}

SYSTEM_PROMPT = """You extract insights from one recorded business call (or one part of it).
Report only what the customer or prospect side of the call actually says, never guesses:
- feature: a product capability they request, ask about or discuss;
- pain_point: a problem they suffer today;
- objection: a reason they give not to buy or to delay;
- competitor: another vendor they name;
- action_item: a task someone commits to, with `owner` the person's name as spoken.
`value` is a short canonical name (a few words, no sentence); `quote` is the exact sentence of
the transcript that states it, copied verbatim; `owner` is null except for action items.
Report each insight once. `sentiment` is the customer's overall attitude in this text
(positive, neutral, negative, or mixed) and `sentiment_quote` the sentence that shows it best
(empty when nothing does). Answer with JSON that follows the schema, nothing else."""


@dataclass(frozen=True)
class Insight:
    kind: str
    value: str
    quote: str
    owner: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Two insights are the same when kind and value match, whatever the case or spacing."""
        return self.kind, " ".join(self.value.lower().split())


@dataclass(frozen=True)
class Extraction:
    """The model's answer for one transcript (or one part of it)."""

    insights: tuple[Insight, ...] = ()
    sentiment: str = "neutral"
    sentiment_quote: str = ""
    weight: int = 1  # tokens of the text it came from: merges weigh sentiments by it

    def to_json(self) -> str:
        return json.dumps(
            {
                "insights": [i.__dict__ for i in self.insights],
                "sentiment": self.sentiment,
                "sentiment_quote": self.sentiment_quote,
                "weight": self.weight,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Extraction:
        data = json.loads(text)
        return cls(
            tuple(Insight(**i) for i in data["insights"]),
            data["sentiment"],
            data.get("sentiment_quote", ""),
            int(data.get("weight", 1)),
        )


class AnswerError(ValueError):
    """The model's content is not JSON following the schema."""


def parse_answer(content: str | None, weight: int = 1) -> Extraction:
    """The Extraction in a model's content, or AnswerError naming what is wrong. Unknown kinds
    and empty values are dropped (a lenient server may ignore `strict`); a document that is
    not the schema's object is an error."""
    try:
        data = json.loads(content or "")
    except ValueError as exc:
        raise AnswerError(f"the answer is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("insights"), list):
        raise AnswerError("the answer is not an object with an `insights` list")
    sentiment = data.get("sentiment")
    if sentiment not in SENTIMENTS:
        raise AnswerError(f"the answer's sentiment {sentiment!r} is not one of {SENTIMENTS}")
    insights = []
    for item in data["insights"]:
        if not isinstance(item, dict) or item.get("kind") not in KINDS:
            continue
        value, quote = _text(item.get("value")), _text(item.get("quote"))
        if not value:
            continue
        owner = _text(item.get("owner")) or None
        insights.append(
            Insight(item["kind"], value, quote, owner if item["kind"] == "action_item" else None)
        )
    return Extraction(
        tuple(insights), sentiment, _text(data.get("sentiment_quote")), max(1, weight)
    )


def _text(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def user_message(title: str, text: str, part: int, parts: int) -> str:
    """The user turn: which call, which part of it, and the text itself."""
    where = f" (part {part} of {parts}; the other parts are sent separately)" if parts > 1 else ""
    return f"Call title: {title}{where}\n\nTranscript:\n{text}"


def messages(title: str, text: str, part: int = 1, parts: int = 1) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(title, text, part, parts)},
    ]
