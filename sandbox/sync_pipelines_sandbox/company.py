"""A deterministic synthetic company: people, projects, chat channels and their messages.

The company is also the emulators' live store: the chat emulator reads and mutates it, and
the ground-truth accessors read the same structures, so tests compare what a client synced
against what the "vendor" actually holds. Messages are indexed per channel by timestamp (sorted
integer microseconds + bisect), so paging 50,000 messages costs no scans.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import threading
import time
from dataclasses import dataclass, field

from sync_pipelines import clock
from sync_pipelines_sandbox.text import FIRST_NAMES, LAST_NAMES, PROJECTS, Chatter, email_local

DOMAIN = "acme.test"
TEAM_ID = "T0ACMESBX"
TEAM_NAME = "Acme Sandbox"

_ID_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_DAY = 86_400


def ts_to_us(ts: str | float) -> int:
    """A message ts ("1763900000.000100") or epoch seconds -> integer µs (strings: exact)."""
    if isinstance(ts, str):
        seconds, _, fraction = ts.strip().partition(".")
        return int(seconds or 0) * 1_000_000 + int((fraction + "000000")[:6])
    return round(ts * 1_000_000)


def us_to_ts(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


@dataclass(frozen=True, slots=True)
class Person:
    user_id: str
    name: str
    email: str  # "" for bots: chat bot users have no email
    is_bot: bool = False
    bot_id: str | None = None

    @property
    def handle(self) -> str:
        return self.email.partition("@")[0] or self.name.lower().replace(" ", "-")


@dataclass(frozen=True, slots=True)
class Project:
    key: str
    name: str


@dataclass(slots=True)
class Message:
    """One chat message as stored; `thread_ts` is set on replies (and on nothing else)."""

    ts: str
    user: str | None
    text: str
    thread_ts: str | None = None
    edited: dict | None = None
    subtype: str | None = None
    bot_id: str | None = None
    username: str | None = None


@dataclass(slots=True)
class Channel:
    id: str
    name: str
    is_private: bool
    created: int
    members: list[str]
    is_archived: bool = False
    purpose: str = ""


@dataclass(slots=True)
class ChannelLog:
    """Per-channel message index: top-level keys sorted ascending, replies grouped by thread."""

    keys: list[int] = field(default_factory=list)
    top: dict[int, Message] = field(default_factory=dict)
    threads: dict[int, list[int]] = field(default_factory=dict)  # parent key -> reply keys, sorted
    replies: dict[int, Message] = field(default_factory=dict)

    def free_key(self, us: int) -> int:
        """The first microsecond at or after `us` not used by any message of this channel."""
        while us in self.top or us in self.replies:
            us += 1
        return us


# (name, private, bot is member, archived, purpose, message weight)
_CHANNELS = (
    ("general", False, True, False, "Company-wide announcements and chatter", 1.0),
    ("random", False, True, False, "Non-work banter", 0.7),
    ("engineering", False, True, False, "Engineering discussions", 2.0),
    ("incidents", False, True, False, "Production incidents, one thread each", 0.8),
    ("alerts", False, True, False, "Automated alerts", 0.3),
    ("design-reviews", False, True, False, "Design and RFC reviews", 0.6),
    ("sales-team", False, True, False, "Pipeline and deals", 0.8),
    ("customer-success", False, True, False, "Escalations and renewals", 0.8),
    ("product-launches", False, True, False, "Launch coordination", 0.5),
    ("watercooler", False, False, False, "Coffee talk (the sync bot has not joined it)", 0.5),
    ("old-office-move", False, True, True, "Archived: the 2024 office move", 0.3),
    ("leadership", True, True, False, "Leadership team (private)", 0.5),
    ("security-response", True, True, False, "Security incident response (private)", 0.4),
    ("deal-desk", True, True, False, "Contract approvals (private)", 0.4),
    ("hr-confidential", True, False, False, "HR only (private, the bot is not a member)", 0.3),
)
_AUTOMATED = {"alerts", "engineering", "incidents"}  # where the integration bot posts


class Company:
    """Everything the emulators serve. Build one with `Company.generate(...)`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.seed = 0
        self.message_count = 0
        self.days = 0
        self.anchor = clock.today()
        self.people: list[Person] = []
        self.bot: Person | None = None  # the sandbox app's bot user (the token's owner)
        self.projects: list[Project] = []
        self.issue_keys: list[str] = []
        self._users: dict[str, Person] = {}
        self._channels: dict[str, Channel] = {}
        self._logs: dict[str, ChannelLog] = {}

    # ----------------------------------------------------------------- generation
    @classmethod
    def generate(
        cls,
        seed: int = 7,
        messages: int = 2000,
        days: int = 14,
        anchor: dt.date | None = None,
    ) -> Company:
        """Reproducible from (seed, messages, days, anchor); `messages` counts replies too.

        Messages spread over [anchor - days + 1, anchor] (UTC days). Nothing is later than
        now - 60 s: when the anchor is today the span simply ends there.
        """
        rng = random.Random(seed)
        company = cls()
        company.seed, company.message_count, company.days = seed, messages, days
        company.anchor = anchor or clock.today()
        start, end = company.span()
        company._make_people(rng, min(200, 20 + messages // 250))
        company._make_projects(rng, 40 + messages // 400)
        company._make_channels(rng, start)
        company._make_messages(rng, messages, start, end)
        return company

    def span(self) -> tuple[int, int]:
        """[start, end) in epoch seconds that every source's data covers: the company's days,
        ending no later than now - 60 s (and covering at least one day)."""
        start = int(
            dt.datetime.combine(
                self.anchor - dt.timedelta(days=self.days - 1), dt.time(), dt.UTC
            ).timestamp()
        )
        end = min(start + self.days * _DAY, int(clock.now_epoch()) - 60)
        return min(start, end - _DAY), end

    def _new_id(self, rng: random.Random, prefix: str, taken: set[str]) -> str:
        while True:
            candidate = prefix + "".join(rng.choices(_ID_CHARS, k=8))
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    def _make_people(self, rng: random.Random, count: int) -> None:
        taken: set[str] = set()
        bots = [
            Person(self._new_id(rng, "U0", taken), name, "", True, self._new_id(rng, "B0", taken))
            for name in ("Sync Bot", "Deploy Bot")
        ]
        combos = rng.sample(range(len(FIRST_NAMES) * len(LAST_NAMES)), count - len(bots))
        emails: set[str] = set()
        humans = []
        for combo in combos:
            name = f"{FIRST_NAMES[combo // len(LAST_NAMES)]} {LAST_NAMES[combo % len(LAST_NAMES)]}"
            local = email_local(name)
            email, n = f"{local}@{DOMAIN}", 2
            while email in emails:
                email, n = f"{local}{n}@{DOMAIN}", n + 1
            emails.add(email)
            humans.append(Person(self._new_id(rng, "U0", taken), name, email))
        self.people = humans + bots
        self.bot = bots[0]
        self._users = {p.user_id: p for p in self.people}

    def _make_projects(self, rng: random.Random, issues_per_project: int) -> None:
        self.projects = [Project(key, name) for key, name in PROJECTS]
        self.issue_keys = [
            f"{project.key}-{number}"
            for project in self.projects
            for number in sorted(rng.sample(range(1, 4 * issues_per_project), issues_per_project))
        ]

    def _make_channels(self, rng: random.Random, start: int) -> None:
        taken: set[str] = set()
        humans = [p.user_id for p in self.people if not p.is_bot]
        deploy_bot = self.people[-1].user_id
        for name, private, bot_member, archived, purpose, _ in _CHANNELS:
            if name == "general":
                members = list(humans)
            else:
                members = rng.sample(humans, max(5, int(len(humans) * rng.uniform(0.2, 0.7))))
            if bot_member:
                members.append(self.bot.user_id)
            if name in _AUTOMATED:
                members.append(deploy_bot)
            channel = Channel(
                id=self._new_id(rng, "C0", taken),
                name=name,
                is_private=private,
                created=start - rng.randint(30, 900) * _DAY,
                members=members,
                is_archived=archived,
                purpose=purpose,
            )
            self._channels[channel.id] = channel
            self._logs[channel.id] = ChannelLog()

    def _make_messages(self, rng: random.Random, total: int, start: int, end: int) -> None:
        chatter = Chatter(rng, self.issue_keys, [p.name for p in self.projects])
        channels = list(self._channels.values())
        cum_weights = list(itertools.accumulate(spec[-1] for spec in _CHANNELS))
        first_names = {p.user_id: p.name.split()[0] for p in self.people}
        speakers = {
            c.id: [(u, first_names[u]) for u in c.members if not self._users[u].is_bot]
            for c in channels
        }
        deploy_bot = self.people[-1]
        span_us = (end - start) * 1_000_000
        start_us, end_us = start * 1_000_000, end * 1_000_000
        made = 0
        while made < total:
            channel = rng.choices(channels, cum_weights=cum_weights)[0]
            log, members = self._logs[channel.id], speakers[channel.id]
            # an archived channel went quiet halfway through the span
            reach = span_us // 2 if channel.is_archived else span_us
            key = log.free_key(start_us + int(rng.random() * reach))
            if channel.name in _AUTOMATED and rng.random() < 0.25:
                msg = Message(
                    us_to_ts(key),
                    None,
                    chatter.bot_line(members),
                    subtype="bot_message",
                    bot_id=deploy_bot.bot_id,
                    username=deploy_bot.name,
                )
            else:
                text = (
                    chatter.long_message(members)
                    if rng.random() < 0.003
                    else chatter.message(members)
                )
                msg = Message(us_to_ts(key), rng.choice(members)[0], text)
            self._maybe_edit(rng, msg, key, end_us)
            log.top[key] = msg
            log.keys.append(key)
            made += 1
            if msg.subtype or rng.random() >= 0.10 or made >= total:
                continue
            replies = min(rng.randint(1, 8), total - made)
            log.threads[key] = thread = []
            at = key
            for _ in range(replies):
                at = log.free_key(
                    min(at + 1 + int(rng.expovariate(1 / 1800) * 1e6), max(end_us, at + 1))
                )
                reply = Message(
                    us_to_ts(at), rng.choice(members)[0], chatter.message(members), thread_ts=msg.ts
                )
                self._maybe_edit(rng, reply, at, end_us)
                log.replies[at] = reply
                thread.append(at)
            made += replies
        for log in self._logs.values():
            log.keys.sort()

    @staticmethod
    def _maybe_edit(rng: random.Random, msg: Message, key: int, end_us: int) -> None:
        if msg.user and rng.random() < 0.03:
            edited = max(key + 1, min(key + int(rng.uniform(30, 7200) * 1e6), end_us))
            msg.edited = {"user": msg.user, "ts": us_to_ts(edited)}

    # ----------------------------------------------------------------- lookups
    def user(self, user_id: str) -> Person | None:
        return self._users.get(user_id)

    def channel(self, channel_id: str) -> Channel | None:
        return self._channels.get(channel_id)

    def channel_by_name(self, name: str) -> Channel | None:
        return next((c for c in self._channels.values() if c.name == name), None)

    def chat_channels(self) -> list[Channel]:
        """Every channel, including those the bot cannot see (private, not a member)."""
        return list(self._channels.values())

    def bot_can_read(self, channel: Channel) -> bool:
        """Public channels (after joining) and private ones the bot belongs to."""
        return not channel.is_private or self.bot.user_id in channel.members

    def channel_messages(self, channel_id: str) -> list[Message]:
        """Top-level messages, newest first (the order conversations.history serves)."""
        with self.lock:
            log = self._logs[channel_id]
            return [log.top[k] for k in reversed(log.keys)]

    def thread_replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        """Replies of one thread, oldest first, without the parent."""
        with self.lock:
            log = self._logs[channel_id]
            return [log.replies[k] for k in log.threads.get(ts_to_us(thread_ts), ())]

    def message(self, channel_id: str, ts: str) -> Message | None:
        log = self._logs[channel_id]
        key = ts_to_us(ts)
        return log.top.get(key) or log.replies.get(key)

    def log(self, channel_id: str) -> ChannelLog:
        """The channel's raw index, for the emulators (hold `lock` while reading it)."""
        return self._logs[channel_id]

    def expected_chat_messages(
        self, oldest: float, latest: float, include_archived: bool = False
    ) -> list[dict]:
        """Ground truth for a sync of [oldest, latest): what the bot may read, with current text."""
        lo, hi = ts_to_us(oldest), ts_to_us(latest)
        out = []
        with self.lock:
            for channel in self._channels.values():
                if not self.bot_can_read(channel) or (channel.is_archived and not include_archived):
                    continue
                log = self._logs[channel.id]
                for key in log.keys[
                    bisect.bisect_left(log.keys, lo) : bisect.bisect_left(log.keys, hi)
                ]:
                    msg = log.top[key]
                    out.append(self._truth(channel, msg, msg.ts if key in log.threads else None))
                for key, msg in log.replies.items():
                    if lo <= key < hi:
                        out.append(self._truth(channel, msg, msg.thread_ts))
        out.sort(key=lambda m: (m["ts"], m["channel_id"]))
        return out

    @staticmethod
    def _truth(channel: Channel, msg: Message, thread_ts: str | None) -> dict:
        return {
            "channel_id": channel.id,
            "channel_name": channel.name,
            "is_private": channel.is_private,
            "ts": msg.ts,
            "thread_ts": thread_ts,
            "user": msg.user,
            "text": msg.text,
        }

    # ----------------------------------------------------------------- mutations
    def post(
        self,
        channel_id: str,
        user_id: str | None,
        text: str,
        thread_ts: str | None = None,
        bot_id: str | None = None,
    ) -> str:
        """Store a new message stamped now (unique in its channel); returns its ts."""
        with self.lock:
            log = self._logs[channel_id]
            key = log.free_key(time.time_ns() // 1000)
            msg = Message(us_to_ts(key), user_id, text, bot_id=bot_id)
            if thread_ts is None:
                bisect.insort(log.keys, key)
                log.top[key] = msg
                return msg.ts
            parent = ts_to_us(thread_ts)
            if parent not in log.top:
                raise KeyError(f"no thread {thread_ts} in {channel_id}")
            msg.thread_ts = log.top[parent].ts
            bisect.insort(log.threads.setdefault(parent, []), key)
            log.replies[key] = msg
            return msg.ts

    def edit(self, channel_id: str, ts: str, text: str, user_id: str | None = None) -> str:
        """Replace a message's text as its author (or `user_id`) would; returns the edit's ts."""
        with self.lock:
            msg = self.message(channel_id, ts)
            if msg is None:
                raise KeyError(f"no message {ts} in {channel_id}")
            edited = us_to_ts(max(time.time_ns() // 1000, ts_to_us(ts) + 1))
            msg.text = text
            msg.edited = {"user": user_id or msg.user, "ts": edited}
            return edited

    def add_member(self, channel_id: str, user_id: str) -> None:
        with self.lock:
            members = self._channels[channel_id].members
            if user_id not in members:
                members.append(user_id)
