"""CallRail's records for the sandbox, derived from the shared CRM world (`crm_world.py`).

The customers who call are the world's contacts, about the world's deals: each CRM note is a
call (the note is the call's note, its text seeds the transcription), every fourth contact
filled in a web form, and every other deal has a text-message conversation. Records are
computed from their index on demand, so a 200,000-contact world costs no memory; a record's
time is the world's base time of its index (calls keep their start time when edited).

Overlays model what a CallRail user does: `edit_call` (a note, a lead status, tags),
`hide_call` (marked as spam: CallRail then leaves it out of every listing, the only deletion
its API shows) and `transcription_pending` (recorded, not transcribed yet: `transcription` is
null until `finish_transcription`).
"""

from __future__ import annotations

import hashlib
import random
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.crm_world import CrmWorld

SANDBOX_CALLRAIL_KEY = "sandbox-callrail-api-key"
SANDBOX_ACCOUNT_ID = "ACC8154748ae6bd4e278a7cddd38a662f4f"
COMPANY_ID = "COM8154748ae6bd4e278a7cddd38a662f4f"
COMPANY_NAME = "Acme Sandbox"
KINDS = ("calls", "form_submissions", "text_messages")
PREFIX = {"calls": "CAL", "form_submissions": "FRM", "text_messages": "SCI"}
SOURCES = ("Google Organic", "Google Ads", "Direct", "Facebook", "Referral", "Bing Ads")
LEAD_STATUSES = ("good_lead", "not_a_lead", "previously_marked_good_lead", None)


def record_id(kind: str, i: int) -> str:
    """CallRail's masked ids: a kind prefix and 32 hex digits (the index leads, so an id
    maps back to its record)."""
    digest = hashlib.md5(f"{kind}:{i}".encode()).hexdigest()[:24]
    return f"{PREFIX[kind]}{i:08x}{digest}"


def index_of(kind: str, record: str) -> int | None:
    if not record.startswith(PREFIX[kind]) or len(record) != 35:
        return None
    try:
        i = int(record[3:11], 16)
    except ValueError:
        return None
    return i if record_id(kind, i) == record else None


@dataclass(frozen=True)
class Item:
    """One CallRail record: kind, index, id, its time (a call's start, a form's submission, a
    conversation's last message) in epoch seconds, and its fields."""

    kind: str
    i: int
    id: str
    at: float
    fields: dict = field(hash=False)


class CallRailData:
    """The company's CallRail account: counts follow the world (calls = notes, forms =
    contacts / 4, conversations = deals / 2)."""

    def __init__(self, company: Company, world: CrmWorld):
        self.company, self.world = company, world
        self.counts = {
            "calls": world.counts["notes"],
            "form_submissions": max(4, world.counts["contacts"] // 4),
            "text_messages": max(4, world.counts["deals"] // 2),
        }
        self.lock = threading.RLock()
        self.hidden: set[str] = set()
        self.edits: dict[str, dict] = {}
        self.pending: set[str] = set()

    _stores: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()
    _stores_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, company: Company) -> CallRailData:
        """The company's account, shared by the emulator and the tests; rebuilt when the
        world was replaced (`CrmWorld.sized` for benchmarks)."""
        world = CrmWorld.of(company)
        with cls._stores_lock:
            store = cls._stores.get(company)
            if store is None or store.world is not world:
                store = cls._stores[company] = cls(company, world)
            return store

    # ------------------------------------------------------------------ records
    def _source_kind(self, kind: str) -> str:
        return {"calls": "notes", "form_submissions": "contacts", "text_messages": "deals"}[kind]

    def _world_index(self, kind: str, i: int) -> int:
        return {"calls": i, "form_submissions": i * 4, "text_messages": i * 2}[kind]

    def time_of(self, kind: str, i: int) -> float:
        base = self.world._base_time(self._source_kind(kind), self._world_index(kind, i))
        return float(int(base))

    def item(self, kind: str, i: int) -> Item:
        if not 0 <= i < self.counts[kind]:
            raise KeyError(f"{kind} {i}")
        rng = random.Random(f"{self.world.seed}:callrail:{kind}:{i}")
        at = self.time_of(kind, i)
        fields = getattr(self, f"_{kind}")(rng, i, at)
        rid = record_id(kind, i)
        with self.lock:
            fields.update(self.edits.get(rid, {}))
            if rid in self.pending:
                fields["transcription"] = None
        return Item(kind, i, rid, at, fields)

    def _contact(self, i: int) -> dict:
        return self.world.record("contacts", i).fields

    def _calls(self, rng: random.Random, i: int, at: float) -> dict:
        note = self.world.record("notes", i).fields
        contact = self._contact(note["contact"])
        account = self.world.account_name(note["account"])
        deal = self.world.record("deals", note["deal"]).fields
        answered = i % 5 != 4
        duration = rng.randrange(45, 1500) if answered else rng.randrange(0, 25)
        caller = f"{contact['first_name']} {contact['last_name']}"
        agent = next(p for p in self.world.owners if p.email == note["owner_email"])
        transcription = None
        if answered:
            transcription = (
                f"Agent: Thanks for calling {COMPANY_NAME}, this is {agent.name}.\n\n"
                f"Caller: Hi, it's {caller} from {account}, calling about {deal['name']}.\n\n"
                f"Agent: Sure. {note['body']}\n\n"
                f"Caller: Great, please send the details to {contact['email']}."
            )
        return {
            "answered": answered,
            "voicemail": not answered and duration > 10,
            "direction": "inbound" if i % 4 else "outbound",
            "duration": duration,
            "customer_name": caller,
            "customer_phone_number": "+1" + contact["phone"].replace("+1-", "").replace("-", ""),
            "customer_city": rng.choice(("Austin", "Berlin", "Lyon", "Osaka", "Lima")),
            "customer_state": rng.choice(("TX", "CA", "NY", "GA")),
            "customer_country": "US",
            "business_phone_number": "+14045550100",
            "tracking_phone_number": f"+1404555{1000 + i % 50:04d}",
            "recording": f"https://app.callrail.com/calls/{record_id('calls', i)}/recording"
            if answered
            else None,
            "recording_duration": str(duration) if answered else None,
            "agent_email": agent.email,
            "note": note["body"] if i % 3 != 2 else None,
            "lead_status": LEAD_STATUSES[i % len(LEAD_STATUSES)],
            "tags": [deal["stage"]] + (["existing customer"] if i % 2 else []),
            "source": SOURCES[i % len(SOURCES)],
            "value": f"{deal['amount']:.2f}" if i % 6 == 0 else None,
            "transcription": transcription,
            "customer_email": contact["email"],
            "account": account,
        }

    def _form_submissions(self, rng: random.Random, i: int, at: float) -> dict:
        contact = self._contact(i * 4)
        account = self.world.account_name(contact["account"])
        name = f"{contact['first_name']} {contact['last_name']}"
        return {
            "customer_name": name,
            "customer_email": contact["email"],
            "customer_phone_number": "+1" + contact["phone"].replace("+1-", "").replace("-", ""),
            "form_data": {
                "name": name,
                "email": contact["email"],
                "company": account,
                "message": rng.choice(
                    (
                        f"{account} would like a quote for {rng.randrange(5, 500)} seats.",
                        f"Please call me back about our {account} renewal.",
                        f"Interested in a demo for the {account} operations team.",
                    )
                ),
            },
            "form_url": "https://www.acme.example/contact",
            "landing_page_url": "https://www.acme.example/pricing",
            "referrer": rng.choice(("google", "bing", "direct", "facebook")),
            "source": SOURCES[i % len(SOURCES)],
            "first_form": i % 3 != 0,
            "lead_status": LEAD_STATUSES[i % len(LEAD_STATUSES)],
        }

    def _text_messages(self, rng: random.Random, i: int, at: float) -> dict:
        deal = self.world.record("deals", i * 2).fields
        account = self.world.account_name(deal["account"])
        contact = self._contact(deal["account"] % self.world.counts["contacts"])
        name = f"{contact['first_name']} {contact['last_name']}"
        lines = [
            ("inbound", f"Hi, {name} from {account} here. Any update on {deal['name']}?"),
            ("outbound", f"Hi {contact['first_name']}, the proposal goes out today."),
            ("inbound", "Thanks! Can we move the call to Thursday?"),
            ("outbound", "Thursday works, I'll send an invite."),
        ][: 2 + i % 3]
        step = 600.0
        messages = [
            {"direction": d, "content": text, "created_at": at - step * (len(lines) - 1 - n)}
            for n, (d, text) in enumerate(lines)
        ]
        return {
            "customer_name": name,
            "customer_phone_number": "+1" + contact["phone"].replace("+1-", "").replace("-", ""),
            "initial_tracker_id": f"TRK{i % 7:032x}",
            "current_tracker_id": f"TRK{i % 7:032x}",
            "initial_tracking_number": f"+1404555{2000 + i % 50:04d}",
            "current_tracking_number": f"+1404555{2000 + i % 50:04d}",
            "state": "active" if i % 4 else "closed",
            "messages": list(reversed(messages)),  # newest first, as CallRail lists them
        }

    # ------------------------------------------------------------------ queries
    def between(self, kind: str, start: float, end: float, hidden: bool = False) -> Iterator[Item]:
        """Records whose time lies in [start, end), oldest first (hidden ones only if asked)."""
        n, lo_t = self.counts[kind], self.world.start
        span = (self.world.end - lo_t) or 1
        lo = max(0, int((start - lo_t) * n / span) - 3)
        hi = min(n, int((end - lo_t) * n / span) + 4)
        with self.lock:
            gone = set(self.hidden)
        for i in range(lo, max(lo, hi)):
            at = self.time_of(kind, i)
            if start <= at < end and (hidden or record_id(kind, i) not in gone):
                yield self.item(kind, i)

    def one(self, kind: str, rid: str) -> Item | None:
        i = index_of(kind, rid)
        if i is None or i >= self.counts[kind]:
            return None
        with self.lock:
            if rid in self.hidden:
                return None
        return self.item(kind, i)

    # ------------------------------------------------------------------ what users do
    def edit_call(self, call_id: str, **changes) -> Item:
        with self.lock:
            self.edits.setdefault(call_id, {}).update(changes)
        found = self.one("calls", call_id)
        if found is None:
            raise KeyError(call_id)
        return found

    def hide_call(self, call_id: str) -> None:
        """Marks a call as spam: CallRail's listings leave it out from then on."""
        with self.lock:
            self.hidden.add(call_id)

    def transcription_pending(self, call_id: str) -> None:
        with self.lock:
            self.pending.add(call_id)

    def finish_transcription(self, call_id: str) -> None:
        with self.lock:
            self.pending.discard(call_id)
