"""The synthetic company's recorded calls, as Gong holds them.

Derived deterministically from the `Company` (people, seed, span): the internal parties are the
company's people (with their emails and a Gong user id each), external parties come from a
customer (`text.CUSTOMERS`), and customer calls and demos are linked to CRM records (a
Salesforce or HubSpot account and opportunity, Gong's call `context`). One store per company
(`GongData.of(company)`), shared by the emulator and the tests' ground truth. Transcripts are
rebuilt on demand from each call's own seed, so a large company costs little memory.

Time: `started` is kept in UTC and served in the call's own time zone (e.g. -08:00, +05:30), as
Gong does; calls are placed in business hours of their zone, so many start near midnight UTC
(a 16:30 -08:00 call starts at 00:30 UTC the next day).

Call insights: each "customer call" plants lines from `insight_terms.customer_lines` (from the
call's own RNG), said by a customer (the action item by its internal owner), and only those: the
chatter uses no insight term, so `insight_terms.facts_in(transcript text)` answers exactly
`planted(call)` (and nothing for demos and internal calls).

Processing: a call with `ready_at` in the future is listed (metadata, parties, context) but has
no transcript yet, until the clock passes `ready_at`; generated calls are all transcribed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Person
from sync_pipelines_sandbox.insight_terms import Fact, customer_lines
from sync_pipelines_sandbox.per_company import PerCompany
from sync_pipelines_sandbox.text import CUSTOMERS, FIRST_NAMES, LAST_NAMES, email_local

SANDBOX_GONG_ACCESS_KEY = "gong-sandbox-access-key"
SANDBOX_GONG_ACCESS_KEY_SECRET = "gong-sandbox-access-key-secret"
APP_URL = "https://app.gong.io/call?id="
WORKSPACE_ID = "623457276584334"
_DAY = 86_400
# Minutes east of UTC of the zones calls are held in.
OFFSETS = (-480, -420, -300, -240, 0, 60, 330, 540)
# kind -> (title template, external scope, CRM-linked, weight)
KINDS = {
    "customer call": ("{c} customer call", True, True, 55),
    "product demo": ("{c} product demo", True, True, 25),
    "pipeline review": ("Pipeline review", False, False, 20),
}
SYSTEMS = (("Zoom", "Conference", "Video"), ("Google Meet", "Conference", "Video"),
           ("Microsoft Teams", "Conference", "Video"), ("Aircall", "Outbound", "Audio"),
           ("Aircall", "Inbound", "Audio"))  # fmt: skip
GUEST_TITLES = ("VP Operations", "Head of IT", "Procurement Manager", "CTO", "Team Lead")
DEALS = ("Renewal 2027", "Expansion", "New business", "Pilot")
STAGES = ("Discovery", "Evaluation", "Negotiation", "Closed Won")
OPENERS = ("Thanks for making the time today.", "Hi everyone, can you all hear me?",
           "Great to see you again, shall we get started?")  # fmt: skip
CLOSERS = ("Thanks everyone, talk soon.", "Great, I'll send a recap after this.",
           "Appreciate the time today, bye for now.")  # fmt: skip
# Chatter that mentions no insight term (insight_terms): planted lines are the only facts.
HOST_LINES = (
    "Could you walk me through how your team works today?",
    "Let me share my screen for a moment.",
    "What does your timeline look like for a decision?",
    "I'll bring in our solutions engineer next time.",
    "How many people would be on the rollout?",
    "That is helpful context, thank you.",
)
GUEST_LINES = (
    "We have about {x} people on the team right now.",
    "Our quarter ends in {m}, so timing matters.",
    "Most of our work happens in spreadsheets today.",
    "I need to check with my manager on that.",
    "The reporting side looked good last time.",
    "We rolled it out to the second office last month.",
)
INTERNAL_LINES = (
    "{c} moved to the next stage this week.",
    "The {c} deal needs a follow up before {m}.",
    "I think we can close {c} this quarter.",
    "Let's review the forecast for {m}.",
    "Who is covering the {c} account while I'm out?",
)
FILLERS = ("Makes sense.", "Right.", "Sounds good.", "Got it, thanks.", "Okay.")
MONTHS = ("January", "March", "June", "September", "December")
TOPICS = ("Call Setup", "Discovery", "Product", "Next Steps")


@dataclass(frozen=True, slots=True)
class Party:
    """A participant: internal ones are company people (with a Gong user id)."""

    name: str
    email: str
    internal: bool
    title: str = ""
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Crm:
    """The CRM records Gong linked the call to (its `context`)."""

    system: str  # "Salesforce" | "HubSpot"
    account_id: str
    account: str
    opportunity_id: str
    opportunity: str
    stage: str


@dataclass(slots=True)
class GongCall:
    """One recorded call as stored; its transcript is rebuilt from `seed` (or `script`)."""

    id: str
    title: str
    kind: str
    started: int  # UTC epoch seconds
    offset_min: int  # the call's time zone, minutes east of UTC
    duration_s: int
    system: str
    direction: str
    media: str
    parties: tuple[Party, ...]  # the host (primary user) first
    customer: str | None
    crm: Crm | None
    seed: int
    private: bool = False
    script: tuple[tuple[int, str], ...] | None = None  # (party index, text) overrides chatter
    ready_at: float | None = None  # when its transcript is ready (None: already)
    version: int = 0

    @property
    def host(self) -> Party:
        return self.parties[0]

    @property
    def external(self) -> bool:
        return any(not p.internal for p in self.parties)

    def processing(self, now: float | None = None) -> bool:
        """Gong has not transcribed the call yet (at `now`, default the clock)."""
        now = clock.now_epoch() if now is None else now
        return self.ready_at is not None and now < self.ready_at

    def started_iso(self) -> str:
        """`started` in the call's own zone, e.g. 2026-11-17T16:30:00-08:00."""
        zone = dt.timezone(dt.timedelta(minutes=self.offset_min))
        return dt.datetime.fromtimestamp(self.started, zone).isoformat()


def gong_user_id(person: Person) -> str:
    """A stable numeric Gong user id for a company person."""
    return str(int(hashlib.sha256(person.user_id.encode()).hexdigest()[:15], 16))


class GongData:
    """Every call of one company, indexed by start time, plus the edits tests make."""

    CACHE_SIZE = 256

    def __init__(self, company: Company):
        self.company = company
        self.lock = threading.RLock()
        self._calls: dict[str, GongCall] = {}
        self._index: list[tuple[int, str]] = []  # (started, id), ascending
        self._cache: OrderedDict[tuple[str, int], tuple[list, list[Fact]]] = OrderedDict()
        self._rng = random.Random(f"gong:{company.seed}")
        self.humans = [p for p in company.people if not p.is_bot]
        self._generate()

    _stores: ClassVar[PerCompany[GongData]] = PerCompany()

    @classmethod
    def of(cls, company: Company) -> GongData:
        """The company's calls; built on first use, then shared (emulator and ground truth)."""
        return cls._stores.get(company, cls)

    # ----------------------------------------------------------------- generation
    def _generate(self) -> None:
        rng = self._rng
        start, end = self.company.span()
        days = max(1, (end - start + _DAY - 1) // _DAY)
        kinds, weights = zip(*((k, v[3]) for k, v in KINDS.items()))
        for _ in range(max(24, self.company.message_count // 5)):
            kind = rng.choices(kinds, weights)[0]
            offset = rng.choice(OFFSETS)
            duration = rng.randrange(15, 61) * 60
            local = rng.randrange(8 * 3600, 18 * 3600, 300)
            begin = start + rng.randrange(days) * _DAY + local - offset * 60
            while begin > end - duration and begin - _DAY >= start:  # keep the local hour
                begin -= _DAY
            while begin < start and begin + _DAY <= end - duration:
                begin += _DAY
            if not start <= begin <= end - duration:  # a short span: anywhere inside it
                begin = rng.randrange(start, max(start + 1, end - duration))
            self._store(self._make(rng, kind, begin, offset, duration))

    def _make(self, rng, kind, begin, offset, duration, customer=None, internal=None,
              guests=None, script=None, ready_at=None, private=False) -> GongCall:  # fmt: skip
        template, external, linked, _ = KINDS[kind]
        system, direction, media = rng.choice(SYSTEMS if external else SYSTEMS[:3])
        customer = customer or (rng.choice(CUSTOMERS) if external else None)
        people = internal or rng.sample(self.humans, min(len(self.humans), rng.randint(1, 3)))
        parties = [Party(p.name, p.email, True, "", gong_user_id(p)) for p in people]
        if external and guests is None:
            guests = [self._guest(rng, customer) for _ in range(rng.randint(1, 2))]
        parties += list(guests or ())
        return GongCall(
            id=self._new_id(rng),
            title=template.format(c=customer),
            kind=kind,
            started=int(begin),
            offset_min=offset,
            duration_s=duration,
            system=system,
            direction=direction,
            media=media,
            parties=tuple(parties),
            customer=customer,
            crm=self._crm(rng, customer) if linked and customer else None,
            seed=rng.getrandbits(32),
            private=private,
            script=tuple(script) if script is not None else None,
            ready_at=ready_at,
        )

    @staticmethod
    def _guest(rng: random.Random, customer: str) -> Party:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        domain = customer.lower().replace(" ", "") + ".example"
        return Party(name, f"{email_local(name)}@{domain}", False, rng.choice(GUEST_TITLES))

    @staticmethod
    def _crm(rng: random.Random, customer: str) -> Crm:
        system = rng.choice(("Salesforce", "Salesforce", "HubSpot"))
        digits = f"{rng.getrandbits(40):012d}"
        return Crm(system, "001" + digits, customer, "006" + digits[::-1],
                   f"{customer} - {rng.choice(DEALS)}", rng.choice(STAGES))  # fmt: skip

    def _new_id(self, rng: random.Random) -> str:
        while True:
            candidate = str(rng.randrange(10**17, 10**19))
            if candidate not in self._calls:
                return candidate

    def _store(self, call: GongCall) -> None:
        with self.lock:
            self._calls[call.id] = call
            bisect.insort(self._index, (call.started, call.id))

    # ----------------------------------------------------------------- reading
    def calls(self) -> list[GongCall]:
        """Every call, oldest first."""
        with self.lock:
            return [self._calls[i] for _, i in self._index]

    def call(self, call_id: str) -> GongCall | None:
        return self._calls.get(call_id)

    def between(self, start: float | None, end: float | None) -> list[GongCall]:
        """Calls with start <= started < end (either bound optional), oldest first."""
        with self.lock:
            lo = 0 if start is None else bisect.bisect_left(self._index, (start, ""))
            hi = len(self._index) if end is None else bisect.bisect_left(self._index, (end, ""))
            return [self._calls[i] for _, i in self._index[lo:hi]]

    def expected(self, start: float, end: float) -> list[GongCall]:
        """Calls a full sync of [start, end) must write now (not those still processing)."""
        return [c for c in self.between(start, end) if not c.processing()]

    def transcript(self, call: GongCall) -> list[dict]:
        """Gong's monologues {speakerId, topic, sentences[{start, end, text}]} (ms from the
        call's start); [] while the call is still processing."""
        return [] if call.processing() else self._built(call)[0]

    def planted(self, call: GongCall) -> list[Fact]:
        """The insight facts the call's transcript states (customer calls only)."""
        return list(self._built(call)[1])

    def speaker_id(self, call: GongCall, index: int) -> str:
        return str(int(call.id) % 10**12 * 100 + index)

    def _built(self, call: GongCall) -> tuple[list, list[Fact]]:
        key = (call.id, call.version)
        with self.lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        built = self._build(call)
        with self.lock:
            self._cache[key] = built
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return built

    def _build(self, call: GongCall) -> tuple[list, list[Fact]]:
        rng = random.Random(call.seed)
        lines, facts = self._lines(call, rng)
        monologues: list[dict] = []
        at = rng.randrange(2000, 9000)
        for n, (speaker, text) in enumerate(lines):
            spoken = max(1200, len(text.split()) * 380)
            sentence = {"start": at, "end": at + spoken, "text": text}
            sid = self.speaker_id(call, speaker)
            if monologues and monologues[-1]["speakerId"] == sid:
                monologues[-1]["sentences"].append(sentence)
            else:
                topic = TOPICS[min(len(TOPICS) - 1, n * len(TOPICS) // max(1, len(lines)))]
                monologues.append({"speakerId": sid, "topic": topic, "sentences": [sentence]})
            at += spoken + rng.randrange(300, 4000)
        return monologues, facts

    def _lines(self, call: GongCall, rng: random.Random) -> tuple[list, list[Fact]]:
        if call.script is not None:
            return list(call.script), []
        internal = [i for i, p in enumerate(call.parties) if p.internal]
        guests = [i for i, p in enumerate(call.parties) if not p.internal] or internal
        chatter = [(0, rng.choice(OPENERS))]
        for _ in range(rng.randint(8, 16)):
            speaker = rng.choice(internal + guests)
            pool = (GUEST_LINES if speaker in guests and call.external else
                    HOST_LINES if call.external else INTERNAL_LINES)  # fmt: skip
            template = rng.choice(FILLERS) if rng.random() < 0.2 else rng.choice(pool)
            text = template.format(x=rng.randint(5, 400), m=rng.choice(MONTHS),
                                   c=call.customer or rng.choice(CUSTOMERS))  # fmt: skip
            chatter.append((speaker, text))
        facts: list[Fact] = []
        if call.kind == "customer call":
            names = {call.parties[i].name: i for i in internal}
            facts = customer_lines(rng, list(names))
            for fact in facts:
                who = names[fact.owner] if fact.owner else rng.choice(guests)
                chatter.insert(rng.randint(1, len(chatter)), (who, fact.quote))
        return chatter + [(0, rng.choice(CLOSERS))], facts

    # ----------------------------------------------------------------- edits
    def add_call(
        self,
        internal: list[Person],
        *,
        kind: str = "customer call",
        started: float | None = None,
        offset_min: int = -480,
        duration_s: int = 600,
        customer: str | None = None,
        guests: list[Party] | None = None,
        script: list[tuple[int, str]] | None = None,
        ready_at: float | None = None,
        private: bool = False,
        title: str | None = None,
    ) -> GongCall:
        """Record a call (the host first); by default it just ended, 60 s ago.
        `ready_at` (epoch s): Gong has not transcribed it until then."""
        begin = started if started is not None else clock.now_epoch() - 60 - duration_s
        with self.lock:
            call = self._make(self._rng, kind, begin, offset_min, duration_s, customer,
                              internal, guests, script, ready_at, private)  # fmt: skip
            if title is not None:
                call.title = title
            self._store(call)
        return call

    def set_ready_at(self, call_id: str, ready_at: float | None) -> None:
        """When Gong finishes the call's transcript (None: it has)."""
        with self.lock:
            self._calls[call_id].ready_at = ready_at

    def rename(self, call_id: str, title: str) -> None:
        with self.lock:
            self._calls[call_id].title = title
            self._calls[call_id].version += 1

    def delete(self, call_id: str) -> GongCall:
        """Someone deletes the call in Gong: gone from every listing, no trace kept."""
        with self.lock:
            call = self._calls.pop(call_id)
            self._index.remove((call.started, call_id))
            return call
