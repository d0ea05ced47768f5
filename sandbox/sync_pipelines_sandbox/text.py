"""Vocabulary and sentence templates for the synthetic company's chatter.

Messages mention people (`<@U…>`, as the chat API encodes them), project names and issue keys
(`SUBS-123`) so that sources synced later (issues, worklogs) can be cross-referenced, and mix in
accents, CJK and emoji so that the clients' encoding paths are exercised.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence

FIRST_NAMES = (
    "Ada", "Alex", "Amara", "Ana", "Anika", "Ben", "Björn", "Carla", "Chen", "Chloé",
    "Dan", "Daniela", "Diego", "Elena", "Emil", "Eva", "Farah", "Felix", "Grace", "Hana",
    "Hiro", "Ines", "Isaac", "Jana", "Javier", "Jin", "José", "Kai", "Kenji", "Lars",
    "Lea", "Leila", "Liam", "Lucía", "Łukasz", "Maya", "Mei", "Miguel", "Nadia", "Noah",
    "Nora", "Olga", "Omar", "Priya", "Rafael", "Renée", "Rosa", "Sam", "Sara", "Søren",
    "Tariq", "Theo", "Uma", "Valentina", "Wei", "Yara", "Yusuf", "Zoë", "Zara", "Aarav",
)  # fmt: skip

LAST_NAMES = (
    "Abbott", "Adeyemi", "Álvarez", "Andersson", "Bauer", "Becker", "Brennan", "Castro",
    "Chen", "Costa", "Dubois", "Eriksen", "Fischer", "Fontaine", "García", "Gómez", "Hansen",
    "Haddad", "Ito", "Jansen", "Kim", "Kowalski", "Kumar", "Larsen", "Lefèvre", "Lindqvist",
    "Martín", "Meyer", "Moreau", "Müller", "Nakamura", "Navarro", "Nguyễn", "Novak", "Okafor",
    "Olsen", "Park", "Patel", "Pereira", "Petrov", "Quinn", "Ramírez", "Rossi", "Sato",
    "Schmidt", "Silva", "Singh", "Sørensen", "Suzuki", "Tanaka", "Torres", "Varga", "Vogel",
    "Wagner", "Walsh", "Weber", "Wójcik", "Yamamoto", "Zhang", "Zieliński",
)  # fmt: skip

PROJECTS = (
    ("SUBS", "Subscriptions"), ("CORE", "Core Platform"), ("MOBI", "Mobile App"),
    ("DATA", "Data Warehouse"), ("PAY", "Payments"), ("WEB", "Web Storefront"),
    ("OPS", "Infrastructure"), ("SEC", "Security"),
)  # fmt: skip

SERVICES = (
    "billing-api",
    "auth-service",
    "search-indexer",
    "checkout",
    "notifications",
    "ledger",
    "ingest-worker",
    "web-frontend",
    "ios-app",
    "android-app",
    "etl-nightly",
)
CUSTOMERS = ("Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Foods", "Soylent")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
EMOJI = (
    ":tada:",
    ":eyes:",
    ":+1:",
    ":white_check_mark:",
    ":fire:",
    "🚀",
    "🎉",
    "👍",
    "✅",
    "🙏",
    "😅",
)

# {p} person mention, {n} first name, {k} issue key, {j} project name, {s} service,
# {c} customer, {d} weekday, {v} version, {x} small number
ENGLISH = (
    "{p} can you take a look at {k} before standup?",
    "Deployed {s} {v} to staging, smoke tests are green.",
    "Heads up: {s} error rate is up to {x}% since the last deploy, looking into it.",
    "I think {k} is blocked on the {j} schema change, {p} any update?",
    "Moving {k} to review, the fix was a missing index on the orders table.",
    "{c} asked again about the {j} roadmap, can we share dates by {d}?",
    "Retro notes for {j} are in the doc, main theme was flaky CI.",
    "Pairing with {p} on {k} this afternoon if anyone wants to join.",
    "The {j} migration finished in {x} minutes, no rollback needed.",
    "Can we get a second reviewer on the {s} PR for {k}? It touches the retry logic.",
    "Customer call with {c} went well, they want SSO and an audit log for {j}.",
    "Reminder: planning for {j} is on {d} at 10:00, please groom your tickets.",
    "{n}, the dashboard for {s} is showing p95 latency of {x}0 ms, is that expected?",
    "Rolled back {s} {v}, it broke the webhook signature check ({k}).",
    "Opened {k} to track the timeout in {s}; repro steps are in the ticket.",
    "Thanks {p}, that cleared it up.",
    "Who owns alerting for {s}? The on-call rotation doc is out of date.",
    "Quick poll: do we keep {d} demos for {j} or move them to async videos?",
    "I'll be out on {d}, {p} is covering {j} questions.",
    "The {c} renewal depends on {k} shipping this sprint.",
    "FYI the nightly export from {s} skipped {x} records again, same root cause as {k}.",
    "Design review for {j} moved to {d}, agenda: pricing page, onboarding, {k}.",
    "Merged the feature flag for {k}; it is off by default until QA signs off.",
    "Does anyone know why {s} needs write access to the billing bucket?",
    "Incident update: {s} recovered, root cause was connection pool exhaustion. Postmortem in {k}.",
    "Estimates for {j}: {x} points left, mostly {k} and the API docs.",
    "Nice work on {k} {p}!",
    "Can someone from {j} join the {c} escalation call at 15:00?",
    "We hit the vendor rate limit again in {s}; adding backoff under {k}.",
    "Benchmarks for {s} {v}: throughput +{x}% with the new batching.",
)
INTERNATIONAL = (
    "Merci {p}, c'est réglé pour {k} ✅",
    "¿Podemos mover la reunión de {j} al {d}? ☕",
    "Danke! Das Release von {s} {v} ist fertig 🎉",
    "了解しました、{k} を確認します 🙏",
    "{k} 已经修复，请帮忙验证一下 👀",
    "Obrigado {n}! A migração do {j} terminou sem erros.",
    "Spotkanie o {j} przesunięte na {d} — dzięki za cierpliwość 😅",
    "Naïve retry loop in {s} fixed — see {k} (café-driven development ☕)",
)
CLOSERS = ("", "", "", " Thanks!", " 🙏", " LMK.", " cc {p}", " (see {k})")
LONG_HEADERS = (
    "Postmortem: {s} outage ({k})",
    "RFC: {j} event pipeline redesign",
    "Weekly {j} status report",
    "Meeting notes — {c} quarterly business review",
)
BOT_LINES = (
    "Build #{x}42 of {s} passed on main ({v}).",
    "Build #{x}17 of {s} failed on main: 3 tests failed in {k}.",
    "Deployment of {s} {v} to production succeeded.",
    "[{k}] status changed from In Progress to In Review by {n}.",
    "Alert resolved: {s} p95 latency back under threshold.",
)


def email_local(name: str) -> str:
    """ASCII `first.last` for an email address: accents stripped, special letters folded."""
    folded = name.translate(str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss"}))
    ascii_name = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return ".".join(part.lower() for part in ascii_name.split())


class Chatter:
    """Fills templates from the company's people, projects and issues, using the caller's RNG."""

    def __init__(self, rng: random.Random, issue_keys: Sequence[str], projects: Sequence[str]):
        self.rng = rng
        self.issue_keys = issue_keys
        self.projects = projects

    def _fill(self, template: str, members: Sequence[tuple[str, str]]) -> str:
        if "{" not in template:
            return template
        rng = self.rng
        user_id, first = rng.choice(members)
        return template.format(
            p=f"<@{user_id}>",
            n=first,
            k=rng.choice(self.issue_keys),
            j=rng.choice(self.projects),
            s=rng.choice(SERVICES),
            c=rng.choice(CUSTOMERS),
            d=rng.choice(DAYS),
            v=f"v{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
            x=rng.randint(2, 97),
        )

    def message(self, members: Sequence[tuple[str, str]]) -> str:
        """One to three sentences; about one in eight is non-English, some end with emoji."""
        rng = self.rng
        parts = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            pool = INTERNATIONAL if rng.random() < 0.12 else ENGLISH
            parts.append(self._fill(rng.choice(pool), members))
        text = " ".join(parts) + self._fill(rng.choice(CLOSERS), members)
        if rng.random() < 0.15:
            text += " " + rng.choice(EMOJI)
        return text

    def long_message(self, members: Sequence[tuple[str, str]]) -> str:
        """A document-like message of 3,000–12,000 characters (postmortems, RFCs, notes)."""
        rng = self.rng
        target = rng.randint(3000, 11700)  # lines are under 300 chars: the total stays < 12,000
        lines = [self._fill(rng.choice(LONG_HEADERS), members), ""]
        size = len(lines[0]) + 1
        while size < target:
            line = "• " + self._fill(rng.choice(ENGLISH + INTERNATIONAL), members)
            lines.append(line)
            size += len(line) + 1
        return "\n".join(lines)

    def bot_line(self, members: Sequence[tuple[str, str]]) -> str:
        return self._fill(self.rng.choice(BOT_LINES), members)
