"""The synthetic company's recorded meetings, as Fathom holds them.

Derived deterministically from the `Company` (people, projects, issue keys, seed, span): the
recorder and internal invitees are the company's people, customer calls also invite people of
a customer (`text.CUSTOMERS`, `is_external` true). One store per company
(`FathomData.of(company)`), shared by the emulator and the tests' ground truth.

Days: Fathom's `created_at` is when the recording was saved, a little after it ended, and is
what the listing filters by; so a meeting that starts before midnight UTC and ends after it
belongs to the next day. Some generated meetings do exactly that.

Call insights: customer calls carry lines planted with `insight_terms.customer_lines` (from each
meeting's own RNG), spoken by the customer (the action item by its internal owner), and only
those: the chatter uses no insight term, so `insight_terms.facts_in(transcript)` answers
exactly `planted(meeting)`.

Processing: a meeting with `ready_at` in the future is listed with a null transcript, summary
and action items until the clock passes it (what the emulator serves for one still processing).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import ClassVar

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Person
from sync_pipelines_sandbox.insight_terms import Fact, customer_lines
from sync_pipelines_sandbox.per_company import PerCompany
from sync_pipelines_sandbox.text import CUSTOMERS, SERVICES

SANDBOX_FATHOM_API_KEY = "fathom-sandbox-api-key"
APP_URL = "https://fathom.video"
TEAMS = ("Sales", "Customer Success", "Engineering", "Product")
_DAY = 86_400
GUESTS = ("Jordan Blake", "Casey Morgan", "Riley Chen", "Morgan Reyes", "Avery Quinn")
INTERNAL_TITLES = ("{j} weekly sync", "{j} sprint planning", "1:1 {a} / {b}", "Review of {k}")
CUSTOMER_TITLES = ("{c} discovery call", "{c} renewal check-in", "{c} product demo", "{c} QBR")
OPENERS = ("Okay, let's get started.", "Thanks everyone for joining.", "Hi all, shall we start?")
CLOSERS = ("Great, thanks everyone.", "Let's wrap up here, thanks.", "Talk next week, bye.")
# Chatter that mentions no insight term (insight_terms): planted lines are the only facts.
BODY = (
    "Let's go through {k} first, it is the last blocker for {j}.",
    "The {s} deploy went out yesterday and the numbers look stable.",
    "I moved {k} to review this morning.",
    "We still need an owner for the {s} alerts.",
    "The {j} roadmap doc has the dates we discussed last week.",
    "Can we split {k} into two smaller tickets?",
    "QA found a regression in {s}, the fix is small.",
    "I'd like a second pair of eyes on {k} before Friday.",
    "The estimate for {j} is about {x} points.",
    "Let me share my screen for a second.",
)
FILLERS = ("Makes sense.", "Sounds good to me.", "Right, agreed.", "Yes, exactly.")
CUSTOMER_BODY = (
    "Thanks for walking us through the {j} setup.",
    "Our team has about {x} people using it every day.",
    "We rolled it out to the second office last month.",
    "How does the pricing work for a team our size?",
    "We would like to see the reporting side next time.",
)


@dataclass(frozen=True)
class Invitee:
    name: str
    email: str
    is_external: bool = False

    @property
    def domain(self) -> str:
        return self.email.partition("@")[2]


@dataclass
class Recording:
    """One recorded meeting; its transcript and summary are rebuilt from `seed` (or
    `script`). Times are epoch seconds; the recorder is the first invitee."""

    recording_id: int
    title: str
    start: int  # recording_start_time
    minutes: float
    created: int  # created_at: shortly after the recording ended
    invitees: list[Invitee]
    team: str  # the recorder's team
    customer: str | None
    seed: int
    script: tuple[tuple[int, str], ...] | None = None
    ready_at: float | None = None
    version: int = 0
    internal: list[int] = field(default_factory=list)  # invitee indexes of company people

    @property
    def recorder(self) -> Invitee:
        return self.invitees[0]

    @property
    def end(self) -> int:
        return self.start + round(self.minutes * 60)

    @property
    def newest_first(self) -> tuple[int, int]:
        """The listing's order: newest created first (ties by id, also newest first)."""
        return (-self.created, -self.recording_id)

    def processing(self, now: float | None = None) -> bool:
        now = clock.now_epoch() if now is None else now
        return self.ready_at is not None and now < self.ready_at


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def team_of(email: str) -> str:
    return TEAMS[sum(email.encode()) % len(TEAMS)]


class FathomData:
    """Every recording of one company, plus the edits tests make."""

    CACHE_SIZE = 256

    def __init__(self, company: Company):
        self.company = company
        self.lock = threading.RLock()
        self._recordings: dict[int, Recording] = {}
        self._cache: OrderedDict[tuple[int, int], dict] = OrderedDict()
        self._rng = random.Random(f"fathom:{company.seed}")
        self._next_id = 100_000_000 + self._rng.randrange(1_000_000)
        self._generate()

    _stores: ClassVar[PerCompany[FathomData]] = PerCompany()

    @classmethod
    def of(cls, company: Company) -> FathomData:
        """The company's recordings; built on first use, then shared."""
        return cls._stores.get(company, cls)

    # ----------------------------------------------------------------- generation
    def _generate(self) -> None:
        rng = self._rng
        humans = [p for p in self.company.people if not p.is_bot]
        start, end = self.company.span()
        days = max(1, (end - start + _DAY - 1) // _DAY)
        for n in range(max(16, self.company.message_count // 25)):
            minutes = round(rng.uniform(15, 60), 2)
            if n % 8 == 3:  # starts late in the evening, saved after midnight: on a day
                # whose next day has begun at any hour the company is generated
                day = start + rng.randrange(max(1, days - 2)) * _DAY
                begin = day + 23 * 3600 + rng.randrange(25 * 60, 50 * 60, 60)
                minutes = max(minutes, 45.0)
            else:
                day = start + rng.randrange(days) * _DAY
                begin = day + rng.randrange(8 * 3600, 18 * 3600, 300)
            lag = rng.randrange(20, 120)
            if begin + minutes * 60 + lag > end:  # not saved yet: anywhere in the past span
                begin = rng.randrange(start, max(start + 1, int(end - minutes * 60 - lag)))
            customer = rng.choice(CUSTOMERS) if rng.random() < 0.45 else None
            people = rng.sample(humans, min(len(humans), rng.randint(2, 5)))
            self._add(rng, people, customer, begin, minutes, lag)

    def _add(
        self, rng, people, customer, begin, minutes, lag, title=None, script=None, ready_at=None
    ) -> Recording:
        invitees = [Invitee(p.name, p.email) for p in people]
        internal = list(range(len(invitees)))
        if customer:
            domain = customer.lower().replace(" ", "") + ".example"
            for guest in rng.sample(GUESTS, rng.randint(1, 2)):
                email = f"{guest.split()[0].lower()}@{domain}"
                invitees.append(Invitee(guest, email, True))
        project = rng.choice(self.company.projects)
        template = rng.choice(CUSTOMER_TITLES if customer else INTERNAL_TITLES)
        keys = [k for k in self.company.issue_keys if k.startswith(project.key + "-")]
        fill = {"j": project.name, "k": rng.choice(keys), "c": customer}
        fill.update(a=invitees[0].name, b=invitees[1 % len(invitees)].name)
        with self.lock:
            self._next_id += rng.randint(1, 9999)
            recording = Recording(
                recording_id=self._next_id,
                title=title or template.format(**fill),
                start=int(begin),
                minutes=minutes,
                created=int(begin + minutes * 60 + lag),
                invitees=invitees,
                team=team_of(invitees[0].email),
                customer=customer,
                seed=rng.getrandbits(32),
                script=tuple(script) if script is not None else None,
                ready_at=ready_at,
                internal=internal,
            )
            self._recordings[recording.recording_id] = recording
        return recording

    # ----------------------------------------------------------------- reading
    def recordings(self) -> list[Recording]:
        """Every recording, newest created first."""
        with self.lock:
            return sorted(self._recordings.values(), key=lambda r: r.newest_first)

    def recording(self, recording_id: int) -> Recording | None:
        return self._recordings.get(recording_id)

    def created_between(self, after: float | None, before: float | None) -> list[Recording]:
        """Recordings created strictly after `after` and strictly before `before`."""
        return [
            r
            for r in self.recordings()
            if (after is None or r.created > after) and (before is None or r.created < before)
        ]

    def expected(self, start: float, end: float) -> list[Recording]:
        """What a full sync of [start, end) writes now: created in it and not processing."""
        return [r for r in self.recordings() if start <= r.created < end and not r.processing()]

    def content(self, recording: Recording) -> dict:
        """{transcript, default_summary, action_items} as Fathom serves them (null while the
        recording is processing)."""
        if recording.processing():
            return {"transcript": None, "default_summary": None, "action_items": None}
        key = (recording.recording_id, recording.version)
        with self.lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        built = self._build(recording)
        with self.lock:
            self._cache[key] = built
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return built

    def planted(self, recording: Recording) -> list[Fact]:
        """The insight lines planted in a customer call (none in an internal meeting)."""
        return self._lines(recording)[1]

    # ----------------------------------------------------------------- content
    def _lines(self, recording: Recording) -> tuple[list[tuple[int, str]], list[Fact]]:
        """(speaker index, text) turns and the facts planted among them."""
        if recording.script is not None:
            return list(recording.script), []
        rng = random.Random(recording.seed)
        project = rng.choice(self.company.projects)
        keys = [k for k in self.company.issue_keys if k.startswith(project.key + "-")]
        guests = [i for i, v in enumerate(recording.invitees) if v.is_external]
        count = max(6, min(40, int(recording.minutes)))
        lines = [(0, rng.choice(OPENERS))]
        for _ in range(count):
            if guests and rng.random() < 0.35:
                speaker, template = rng.choice(guests), rng.choice(CUSTOMER_BODY)
            elif rng.random() < 0.2:
                speaker, template = rng.choice(recording.internal), rng.choice(FILLERS)
            else:
                speaker, template = rng.choice(recording.internal), rng.choice(BODY)
            fill = {"j": project.name, "k": rng.choice(keys), "s": rng.choice(SERVICES)}
            lines.append((speaker, template.format(x=rng.randint(2, 60), **fill)))
        facts: list[Fact] = []
        if guests:
            owners = [recording.invitees[i].name for i in recording.internal]
            facts = customer_lines(rng, owners)
            for fact in facts:
                if fact.owner:
                    speaker = next(
                        i for i in recording.internal if recording.invitees[i].name == fact.owner
                    )
                else:
                    speaker = rng.choice(guests)
                lines.insert(rng.randrange(1, len(lines)), (speaker, fact.quote))
        lines.append((0, rng.choice(CLOSERS)))
        return lines, facts

    def _build(self, recording: Recording) -> dict:
        lines, facts = self._lines(recording)
        step = recording.minutes * 60 / (len(lines) + 1)
        url = f"{APP_URL}/calls/{recording.recording_id}"
        transcript = []
        for n, (speaker, text) in enumerate(lines):
            who = recording.invitees[speaker]
            transcript.append(
                {
                    "speaker": {
                        "display_name": who.name,
                        "matched_calendar_invitee_email": who.email,
                    },
                    "text": text,
                    "timestamp": clock_time(n * step),
                }
            )
        actions = []
        for fact in facts:
            if fact.kind != "action_item":
                continue
            at = next(n for n, (_, text) in enumerate(lines) if text == fact.quote) * step
            owner = next(v for v in recording.invitees if v.name == fact.owner)
            actions.append(
                {
                    "description": fact.value[0].upper() + fact.value[1:],
                    "user_generated": False,
                    "completed": False,
                    "recording_timestamp": clock_time(at),
                    "recording_playback_url": f"{url}?timestamp={int(at)}",
                    "assignee": {
                        "name": owner.name,
                        "email": owner.email,
                        "team": team_of(owner.email),
                    },
                }
            )
        purpose = (
            f"Discuss {recording.title}"
            if not recording.customer
            else (f"Meet {recording.customer} about their use of the product")
        )
        steps = [f"- {a['assignee']['name']}: {a['description']}" for a in actions]
        summary = (
            f"## Meeting Purpose\n\n{purpose}.\n\n## Key Takeaways\n\n"
            + "\n".join(f"- {text}" for _, text in lines[1:4])
            + "\n\n## Next Steps\n\n"
            + ("\n".join(steps) if steps else "- No follow-ups agreed.")
            + "\n"
        )
        return {
            "transcript": transcript,
            "default_summary": {"template_name": "general", "markdown_formatted": summary},
            "action_items": actions,
        }

    # ----------------------------------------------------------------- edits
    def add_meeting(
        self,
        title: str,
        people: list[Person],
        *,
        start: float | None = None,
        minutes: float = 2.0,
        customer: str | None = None,
        script: list[tuple[int, str]] | None = None,
        ready_at: float | None = None,
        lag_s: int = 30,
    ) -> Recording:
        """Record a meeting (the recorder first); by default it was saved 60 s ago.
        `ready_at` (epoch s): Fathom is still processing it until then."""
        begin = start if start is not None else clock.now_epoch() - 60 - lag_s - minutes * 60
        return self._add(
            self._rng, people, customer, begin, minutes, lag_s, title, script, ready_at
        )

    def set_ready_at(self, recording_id: int, ready_at: float | None) -> None:
        with self.lock:
            self._recordings[recording_id].ready_at = ready_at

    def rename(self, recording_id: int, title: str) -> None:
        with self.lock:
            recording = self._recordings[recording_id]
            recording.title = title
            recording.version += 1

    def delete(self, recording_id: int) -> None:
        """The recorder deletes the meeting: gone from every listing, no trace kept."""
        with self.lock:
            del self._recordings[recording_id]
