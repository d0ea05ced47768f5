"""What customers say on recorded calls: the ground truth of call insights.

Emulators of call-recording vendors plant these lines in customer calls (`customer_lines`), and
the OpenAI emulator's chat completions answer an insight extraction with exactly the facts a
transcript's text contains (`facts_in`). Tests and the retrieval bench then measure an
extractor's recall against what was planted, not only the shape of its answers. No vendor is
named here: any conversation emulator may use it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

FEATURES = (
    "SSO",
    "audit log export",
    "usage-based billing",
    "Salesforce sync",
    "offline mode",
    "custom roles",
    "bulk import",
    "data residency in the EU",
    "webhook retries",
    "two-factor authentication",
)
PAIN_POINTS = (
    "slow CSV exports",
    "duplicate invoices",
    "confusing onboarding",
    "missed notifications",
    "nightly sync failures",
    "manual data entry",
)
OBJECTIONS = (
    "high price",
    "long security review",
    "lack of an on-premise option",
    "three-year contract term",
)
COMPETITORS = ("Initrode", "Vandelay Cloud", "Cyberdyne CRM", "Tyrell Analytics", "Massive Dynamic")
ACTION_TASKS = (
    "send the security questionnaire",
    "set up a trial workspace",
    "share the pricing proposal",
    "schedule a technical deep dive",
    "follow up with the legal team",
)
POSITIVE_LINES = (
    "Honestly the team loves the new dashboard.",
    "This is exactly what we were hoping to see.",
    "The rollout last month went really smoothly.",
)

KINDS = ("feature", "pain_point", "objection", "competitor")
VALUES: dict[str, tuple[str, ...]] = {
    "feature": FEATURES,
    "pain_point": PAIN_POINTS,
    "objection": OBJECTIONS,
    "competitor": COMPETITORS,
}
TEMPLATES: dict[str, tuple[str, ...]] = {
    "feature": (
        "Do you support {x} yet? We really need it.",
        "Our admins keep asking about {x}.",
        "Is {x} on your roadmap this quarter?",
    ),
    "pain_point": (
        "The biggest problem for us right now is {x}.",
        "We lose hours every week to {x}.",
    ),
    "objection": (
        "My main concern is the {x}.",
        "To be frank, the {x} could block this for us.",
    ),
    "competitor": (
        "We're also evaluating {x} at the moment.",
        "{x} offered us a lower price last week.",
    ),
}
ACTION_TEMPLATE = "Action item: {owner} will {x}."
_ACTION = re.compile(r"Action item: (?P<owner>[^.]+?) will (?P<task>[^.]+)\.")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|\s*\n\s*")  # a line break ends one too


@dataclass(frozen=True)
class Fact:
    """One insight a transcript holds: its kind, the canonical value, the sentence saying it
    (the evidence quote) and, for action items, the owner's name."""

    kind: str  # feature | pain_point | objection | competitor | action_item
    value: str
    quote: str
    owner: str | None = None


def customer_lines(rng: random.Random, owners: Sequence[str], count: int = 4) -> list[Fact]:
    """`count` planted lines for one customer call (distinct values), the last of them an
    action item owned by one of `owners` (the call's internal people, by name)."""
    facts: list[Fact] = []
    seen: set[tuple[str, str]] = set()
    while len(facts) < max(0, count - 1):
        kind = rng.choice(KINDS)
        value = rng.choice(VALUES[kind])
        if (kind, value) in seen:
            continue
        seen.add((kind, value))
        facts.append(Fact(kind, value, rng.choice(TEMPLATES[kind]).format(x=value)))
    if count and owners:
        owner, task = rng.choice(list(owners)), rng.choice(ACTION_TASKS)
        facts.append(
            Fact("action_item", task, ACTION_TEMPLATE.format(owner=owner, x=task), owner=owner)
        )
    return facts


def facts_in(text: str) -> list[Fact]:
    """Every fact the text states, in order of first mention, each once, quoted by its
    sentence: what a perfect extractor answers."""
    found: dict[tuple[str, str], Fact] = {}
    for sentence in _SENTENCE_END.split(text):
        lowered = sentence.lower()
        for kind in KINDS:
            for value in VALUES[kind]:
                if _mentions(lowered, value) and (kind, value) not in found:
                    found[(kind, value)] = Fact(kind, value, sentence.strip())
        for match in _ACTION.finditer(sentence):
            task = match.group("task").strip()
            if task in ACTION_TASKS and ("action_item", task) not in found:
                owner = match.group("owner").strip()
                found[("action_item", task)] = Fact("action_item", task, match.group(0), owner)
    return list(found.values())


def _mentions(lowered: str, value: str) -> bool:
    """`value` as whole words of the lower-cased sentence ("SSO" is not in "lesson")."""
    return re.search(rf"(?<!\w){re.escape(value.lower())}(?!\w)", lowered) is not None


def sentiment_quote(text: str) -> str:
    """The sentence that shows the text's sentiment best (empty when neutral): its first
    positive line, or the quote of its first pain point or objection."""
    verdict = sentiment(text)
    if verdict == "positive":
        return next(line for line in POSITIVE_LINES if line in text)
    if verdict == "negative":
        return next(f.quote for f in facts_in(text) if f.kind in ("pain_point", "objection"))
    return ""


def sentiment(text: str) -> str:
    """positive, negative or neutral: positive lines against pain points and objections."""
    facts = facts_in(text)
    negative = sum(f.kind in ("pain_point", "objection") for f in facts)
    positive = sum(line in text for line in POSITIVE_LINES)
    if positive > negative:
        return "positive"
    if negative > positive:
        return "negative"
    return "neutral"
