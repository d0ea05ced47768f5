"""The synthetic company's recorded meetings, as Fireflies would hold them.

Derived deterministically from the `Company` (people, projects, issue keys, seed, span), so the
people and issue keys of Slack, Jira and Tempo also meet and talk here. One store per company
(`FirefliesData.of(company)`): the emulator serves it and the tests read their ground truth from
the same object. Transcripts (sentences, summary) are rebuilt on demand from each meeting's own
seed and cached, so a large company costs little memory.

Sharing: `privacy` takes the values Fireflies documents for meetings (link, owner, participants,
teammates_and_participants, participating_teammates, teammates); a meeting shared company-wide
is one whose privacy is in `SHARED_COMPANY_WIDE`.

Processing: a meeting added with `ready_at` (or given one by `set_ready_at`) is served as
Fireflies serves a transcript it has not finished, `meeting_info.summary_status` "processing"
with no sentences and no summary, until the clock passes `ready_at`; generated meetings are
all processed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Person
from sync_pipelines_sandbox.insight_terms import Fact, customer_lines
from sync_pipelines_sandbox.per_company import PerCompany
from sync_pipelines_sandbox.text import CUSTOMERS, DAYS, SERVICES

SHARED_COMPANY_WIDE = frozenset({"teammates", "teammates_and_participants"})
PRIVACY_WEIGHTS = (
    ("teammates", 40),
    ("participants", 30),
    ("teammates_and_participants", 10),
    ("participating_teammates", 8),
    ("link", 7),
    ("owner", 5),
)
# Words each project's meetings use, so keyword tagging has something real to find.
PROJECT_TERMS = {
    "SUBS": ("subscription", "billing", "renewal"),
    "CORE": ("platform", "gateway", "monolith"),
    "MOBI": ("mobile", "iOS", "Android"),
    "DATA": ("warehouse", "ETL", "dashboard"),
    "PAY": ("payment", "checkout", "refund"),
    "WEB": ("storefront", "frontend", "SEO"),
    "OPS": ("infrastructure", "Kubernetes", "Terraform"),
    "SEC": ("security", "audit", "SSO"),
}
VIEW_URL = "https://app.fireflies.ai/view/"
_DAY = 86_400
INSIGHT_LINES = 4  # facts planted in each customer call (insight_terms.customer_lines)
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# (title template, attendees (min, max), minutes (min, max), privacy override or None)
KINDS = (
    ("{j} weekly sync", (4, 8), (30, 60), None),
    ("{j} sprint planning", (5, 9), (45, 90), None),
    ("{j} standup", (3, 7), (15, 20), None),
    ("Incident review: {k}", (3, 6), (30, 60), None),
    ("Design review: {j}", (3, 7), (45, 75), None),
    ("{c} × {j} customer call", (2, 4), (30, 60), "participants"),
    ("1:1 {a} / {b}", (2, 2), (15, 45), "owner"),
    ("{j} retro", (4, 8), (45, 60), None),
    ("All hands", (10, 30), (30, 60), "teammates"),
)
OPENERS = (
    "Okay, let's get started, thanks everyone for joining.",
    "Can everyone hear me okay?",
    "Let's give people a minute to join.",
    "I'll share my screen so we can go through the board.",
)
BODY = (
    "So the main thing on my side is {k}, I think we're close.",
    "The {t} flow is still failing for some {c} accounts.",
    "I looked at {k} yesterday and the root cause is in {s}.",
    "{n}, do you have an update on the {t} changes?",
    "We should probably split {k} into two tickets.",
    "The {j} dashboard shows about {x} percent fewer errors since the deploy.",
    "I'm a bit worried about the {t} migration timeline.",
    "Can we move {k} to next sprint? It's blocked on the {s} release.",
    "{c} asked about the {t} work again, they want a date by {d}.",
    "I'll pair with {n} on {k} this afternoon.",
    "The fix for {k} is in review, it should merge today.",
    "Let's make sure QA signs off on {k} before we ship.",
    "Our {t} numbers look healthy, nothing alarming this week.",
    "I think the {s} retry logic is the real problem here.",
    "Do we have an owner for the {t} runbook?",
    "We agreed to keep {k} behind a feature flag for now.",
    "Right, and the {j} roadmap slide needs updating too.",
    "The export for {c} has to stay UTF-8, they had issues last time.",
    "{n} mentioned {k2} might be related, can you double check?",
    "Latency on {s} went up after {v}, I'm still digging.",
)
FILLERS = (
    "Yeah, agreed.",
    "Makes sense.",
    "Sorry, I was on mute.",
    "Okay.",
    "Got it, thanks.",
    "Right.",
    "Let me check and get back to you.",
    "Sounds good to me.",
)
CLOSERS = (
    "Okay, I'll send the notes and action items after this.",
    "Thanks everyone, talk soon.",
    "Great, that's all for today.",
)
ACTIONS = (
    "Follow up on {k} with {c}",
    "Write up the {t} rollout plan",
    "Review the {s} PR for {k}",
    "Update the {j} roadmap before {d}",
    "Check whether {k2} is related to {k}",
)


@dataclass(frozen=True, slots=True)
class Attendee:
    name: str
    email: str


@dataclass(slots=True)
class Meeting:
    """One recorded meeting as stored; its transcript is rebuilt from `seed` (or `script`)."""

    id: str
    title: str
    date_ms: int  # start time, epoch milliseconds (Fireflies' `date`)
    duration_min: float
    attendees: list[Attendee]  # the organizer first
    privacy: str
    project_key: str
    issue_keys: tuple[str, ...]
    customer: str
    seed: int
    script: tuple[tuple[int, str], ...] | None = None  # (attendee index, text) overrides chatter
    version: int = 0
    ready_ms: int | None = None  # when its transcript is ready, epoch ms (None: already)
    customer_call: bool = False  # the customer says what insight_terms plants (see planted)

    @property
    def organizer(self) -> Attendee:
        return self.attendees[0]

    @property
    def date(self) -> float:
        return self.date_ms / 1000

    def processing(self, now: float | None = None) -> bool:
        """Fireflies has not finished its transcript yet (at `now`, default the clock)."""
        now = clock.now_epoch() if now is None else now
        return self.ready_ms is not None and now * 1000 < self.ready_ms


def _iso_ms(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class FirefliesData:
    """Every meeting of one company, indexed by start time, plus the edits tests make."""

    CACHE_SIZE = 256

    def __init__(self, company: Company):
        self.company = company
        self.lock = threading.RLock()
        self._meetings: dict[str, Meeting] = {}
        self._index: list[tuple[int, str]] = []  # (date_ms, id), ascending
        self._cache: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._ids: set[str] = set()
        self._rng = random.Random(f"fireflies:{company.seed}")
        self._generate()

    # ----------------------------------------------------------------- one store per company
    _stores: ClassVar[PerCompany[FirefliesData]] = PerCompany()

    @classmethod
    def of(cls, company: Company) -> FirefliesData:
        """The company's meetings; built on first use, then shared (emulator and ground truth)."""
        return cls._stores.get(company, cls)

    # ----------------------------------------------------------------- generation
    def _generate(self) -> None:
        rng = self._rng
        humans = [p for p in self.company.people if not p.is_bot]
        start, end = self.company.span()
        days = max(1, (end - start + _DAY - 1) // _DAY)
        for _ in range(max(12, self.company.message_count // 25)):
            title, minutes, attendees, privacy, project, keys, customer = self._plan(rng, humans)
            seconds = minutes * 60
            day = start + rng.randrange(days) * _DAY
            begin = day + rng.randrange(7 * 3600, 19 * 3600, 300)
            if begin + seconds > end:  # not over yet: put it anywhere in the past span
                begin = rng.randrange(start, max(start + 1, int(end - seconds)))
            self._store(
                Meeting(
                    id=self._new_id(rng),
                    title=title,
                    date_ms=begin * 1000,
                    duration_min=minutes,
                    attendees=attendees,
                    privacy=privacy,
                    project_key=project,
                    issue_keys=keys,
                    customer=customer,
                    seed=rng.getrandbits(32),
                    customer_call=title.endswith(" customer call"),
                )
            )

    def _plan(self, rng: random.Random, humans: list[Person]):
        title_tpl, (lo, hi), (min_lo, min_hi), privacy = rng.choice(KINDS)
        project = rng.choice(self.company.projects)
        own_keys = [k for k in self.company.issue_keys if k.startswith(project.key + "-")]
        keys = tuple(rng.sample(own_keys, min(len(own_keys), rng.randint(1, 3))))
        if rng.random() < 0.3:  # meetings drift into a neighbouring project now and then
            keys += (rng.choice(self.company.issue_keys),)
        people = rng.sample(humans, min(len(humans), rng.randint(lo, hi)))
        attendees = [Attendee(p.name, p.email) for p in people]
        customer = rng.choice(CUSTOMERS)
        if title_tpl.startswith("{c}"):
            guest = rng.choice(("Jordan Blake", "Casey Morgan", "Riley Chen"))
            domain = customer.lower().replace(" ", "") + ".example"
            attendees.append(Attendee(guest, f"{guest.split()[0].lower()}@{domain}"))
        title = title_tpl.format(
            j=project.name,
            k=keys[0],
            c=customer,
            a=attendees[0].name,
            b=attendees[-1].name,
        )
        privacy = privacy or rng.choices(*zip(*PRIVACY_WEIGHTS))[0]
        minutes = round(rng.uniform(min_lo, min_hi), 2)
        return title, minutes, attendees, privacy, project.key, keys, customer

    def _new_id(self, rng: random.Random) -> str:
        while True:
            candidate = "".join(rng.choices(_ID_CHARS, k=16))
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    def _store(self, meeting: Meeting) -> None:
        self._meetings[meeting.id] = meeting
        bisect.insort(self._index, (meeting.date_ms, meeting.id))

    # ----------------------------------------------------------------- reading
    def meetings(self) -> list[Meeting]:
        """Every meeting, newest first."""
        with self.lock:
            return [self._meetings[i] for _, i in reversed(self._index)]

    def meeting(self, meeting_id: str) -> Meeting | None:
        return self._meetings.get(meeting_id)

    def between(self, from_ms: int | None, to_ms: int | None) -> list[Meeting]:
        """Meetings with from_ms <= date <= to_ms (either bound optional), newest first."""
        with self.lock:
            lo = 0 if from_ms is None else bisect.bisect_left(self._index, (from_ms, ""))
            hi = (
                len(self._index)
                if to_ms is None
                else bisect.bisect_right(self._index, (to_ms, "\U0010ffff"))
            )
            return [self._meetings[i] for _, i in reversed(self._index[lo:hi])]

    def transcript(self, meeting: Meeting) -> dict:
        """The Transcript object, every field the emulator's schema knows; a meeting still
        processing has no sentences, speakers or summary yet."""
        built = self._transcript(meeting)
        if not meeting.processing():
            return built
        return {
            **built,
            "sentences": [],
            "speakers": [],
            "summary": None,
            "meeting_info": {**built["meeting_info"], "summary_status": "processing"},
        }

    def _transcript(self, meeting: Meeting) -> dict:
        key = (meeting.id, meeting.version)
        with self.lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        built = self._build(meeting)
        with self.lock:
            self._cache[key] = built
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return built

    def _build(self, meeting: Meeting) -> dict:
        rng = random.Random(meeting.seed)
        sentences = self._sentences(meeting, rng)
        spoken = sorted({s["speaker_id"] for s in sentences})
        organizer = meeting.organizer
        emails = [a.email for a in meeting.attendees]
        company_emails = {p.email for p in self.company.people if p.email}
        return {
            "id": meeting.id,
            "title": meeting.title,
            "date": meeting.date_ms,
            "dateString": _iso_ms(meeting.date_ms),
            "duration": meeting.duration_min,
            "privacy": meeting.privacy,
            "organizer_email": organizer.email,
            "host_email": organizer.email,
            "participants": emails,
            "fireflies_users": [e for e in emails if e in company_emails],
            "meeting_attendees": [
                {
                    "displayName": a.name,
                    "email": a.email,
                    "phoneNumber": None,
                    "name": a.name,
                    "location": None,
                }
                for a in meeting.attendees
            ],
            "speakers": [{"id": i, "name": meeting.attendees[i].name} for i in spoken],
            "sentences": sentences,
            "summary": self._summary(meeting, rng),
            "transcript_url": VIEW_URL + meeting.id,
            "meeting_link": f"https://meet.google.com/{meeting.id[:3].lower()}-"
            f"{meeting.id[3:7].lower()}-{meeting.id[7:10].lower()}",
            "calendar_id": None,
            "meeting_info": {
                "fred_joined": True,
                "silent_meeting": not sentences,
                "summary_status": "processed",
            },
        }

    def _fill(self, template: str, meeting: Meeting, rng: random.Random, speaker: int) -> str:
        if "{" not in template:
            return template
        others = [a for i, a in enumerate(meeting.attendees) if i != speaker] or meeting.attendees
        project = next(p for p in self.company.projects if p.key == meeting.project_key)
        terms = PROJECT_TERMS.get(project.key, (project.name.lower(),))
        key = rng.choice(meeting.issue_keys)
        related = [k for k in meeting.issue_keys if k != key] or [key]
        return template.format(
            k=key,
            k2=rng.choice(related),
            j=project.name,
            t=rng.choice(terms),
            s=rng.choice(SERVICES),
            c=meeting.customer,
            d=rng.choice(DAYS),
            n=rng.choice(others).name.split()[0],
            x=rng.randint(2, 60),
            v=f"v{rng.randint(1, 4)}.{rng.randint(0, 30)}",
        )

    def planted(self, meeting: Meeting) -> list[Fact]:
        """The insights a customer call's transcript states (none for other meetings), drawn
        from the meeting's own insights RNG: the other generated content never changes."""
        if not meeting.customer_call or meeting.script is not None:
            return []
        owners = [a.name for a in meeting.attendees[:-1]]  # the customer's guest comes last
        return customer_lines(self._insights_rng(meeting), owners, INSIGHT_LINES)

    @staticmethod
    def _insights_rng(meeting: Meeting, purpose: str = "facts") -> random.Random:
        return random.Random(f"insights:{purpose}:{meeting.seed}")

    def _plant(
        self, meeting: Meeting, lines: list[tuple[int, str]], rng: random.Random
    ) -> tuple[list[tuple[int, str]], set[int]]:
        """The chatter with the planted facts said in it (the guest speaks the customer's
        lines, the organizer the action item), and their indexes."""
        facts = self.planted(meeting)
        guest = len(meeting.attendees) - 1
        for fact in facts:
            speaker = 0 if fact.kind == "action_item" else guest
            lines.insert(rng.randrange(1, max(2, len(lines))), (speaker, fact.quote))
        quotes = {f.quote for f in facts}
        return lines, {n for n, (_, text) in enumerate(lines) if text in quotes}

    def _sentences(self, meeting: Meeting, rng: random.Random) -> list[dict]:
        planted: set[int] = set()
        own = self._insights_rng(meeting, "placement")  # never the meeting's own RNG
        if meeting.script is not None:
            lines = list(meeting.script)
        else:
            lines, planted = self._plant(meeting, self._chatter(meeting, rng), own)
        out, at = [], 0.0
        for index, (speaker, text) in enumerate(lines):
            spoken = max(1.2, len(text.split()) / 2.6)
            out.append(
                {
                    "index": index,
                    "speaker_name": meeting.attendees[speaker].name,
                    "speaker_id": speaker,
                    "text": text,
                    "raw_text": text,
                    "start_time": round(at, 2),
                    "end_time": round(at + spoken, 2),
                }
            )
            at += spoken + (own if index in planted else rng).uniform(0.5, 5.0)
        return out

    def _chatter(self, meeting: Meeting, rng: random.Random) -> list[tuple[int, str]]:
        """Turn-taking talk filling the meeting: openers, project talk, fillers, a closer."""
        total = meeting.duration_min * 60
        people = len(meeting.attendees)
        lines = [(0, rng.choice(OPENERS))]
        at, speaker = 8.0, 0
        while at < total - 20:
            if rng.random() < 0.45:
                speaker = rng.randrange(people)
            template = rng.choice(FILLERS) if rng.random() < 0.2 else rng.choice(BODY)
            text = self._fill(template, meeting, rng, speaker)
            lines.append((speaker, text))
            at += max(1.2, len(text.split()) / 2.6) + rng.uniform(0.5, 5.0)
        lines.append((0, rng.choice(CLOSERS)))
        return lines

    def _summary(self, meeting: Meeting, rng: random.Random) -> dict:
        project = next(p for p in self.company.projects if p.key == meeting.project_key)
        terms = PROJECT_TERMS.get(project.key, ())
        keys = ", ".join(meeting.issue_keys)
        owners = rng.sample(meeting.attendees, min(len(meeting.attendees), rng.randint(1, 3)))
        action_items = "\n\n".join(
            f"**{owner.name}**\n"
            + self._fill(rng.choice(ACTIONS), meeting, rng, 0)
            + f" ({rng.randint(1, max(1, int(meeting.duration_min))):02d}:{rng.randint(0, 59):02d})"
            for owner in owners
        )
        return {
            "overview": (
                f'{meeting.organizer.name} led "{meeting.title}". The team went through '
                f"{keys}, reviewed the {project.name} plans ({', '.join(terms) or 'roadmap'}) "
                f"and agreed on next steps with {meeting.customer} in mind."
            ),
            "action_items": action_items,
            "keywords": [project.name, *terms[:2], *meeting.issue_keys[:2]],
            "short_summary": f"{project.name}: {keys}",
        }

    # ----------------------------------------------------------------- ground truth
    def expected(self, start: float, end: float) -> list[Meeting]:
        """Meetings a full sync of [start, end) (epoch seconds) must return now, newest first
        (one still processing is not written yet)."""
        return [
            m for m in self.between(int(start * 1000), None) if m.date < end and not m.processing()
        ]

    # ----------------------------------------------------------------- edits
    def add_meeting(
        self,
        title: str,
        attendees: list[Person | Attendee],
        *,
        date: float | None = None,
        duration_min: float = 2.0,
        privacy: str = "participants",
        project_key: str | None = None,
        issue_keys: tuple[str, ...] = (),
        script: list[tuple[int, str]] | None = None,
        ready_at: float | None = None,
    ) -> Meeting:
        """Record a meeting (the organizer first); by default it just ended, 60 s ago.
        `ready_at` (epoch s): Fireflies is still processing it until then."""
        now = clock.now_epoch()
        start = date if date is not None else now - 60 - duration_min * 60
        people = [Attendee(a.name, a.email) for a in attendees]
        project = project_key or self.company.projects[0].key
        with self.lock:
            meeting = Meeting(
                id=self._new_id(self._rng),
                title=title,
                date_ms=int(start * 1000),
                duration_min=duration_min,
                attendees=people,
                privacy=privacy,
                project_key=project,
                issue_keys=issue_keys
                or tuple(k for k in self.company.issue_keys if k.startswith(project + "-"))[:1],
                customer=CUSTOMERS[0],
                seed=self._rng.getrandbits(32),
                script=tuple(script) if script is not None else None,
                ready_ms=None if ready_at is None else int(ready_at * 1000),
            )
            self._store(meeting)
        return meeting

    def set_ready_at(self, meeting_id: str, ready_at: float | None) -> None:
        """When Fireflies finishes the meeting's transcript (None: it has)."""
        with self.lock:
            self._meetings[meeting_id].ready_ms = None if ready_at is None else int(ready_at * 1000)

    def rename(self, meeting_id: str, title: str) -> None:
        """Fireflies' updateMeetingTitle: the date (and so the partition) stays."""
        with self.lock:
            meeting = self._meetings[meeting_id]
            meeting.title = title
            meeting.version += 1

    def set_privacy(self, meeting_id: str, privacy: str) -> None:
        with self.lock:
            meeting = self._meetings[meeting_id]
            meeting.privacy = privacy
            meeting.version += 1

    def delete(self, meeting_id: str) -> None:
        """Fireflies' deleteTranscript: gone from every listing, no trace kept."""
        with self.lock:
            meeting = self._meetings.pop(meeting_id)
            self._index.remove((meeting.date_ms, meeting_id))
