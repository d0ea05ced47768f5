"""HubSpot's CRM objects as the shared `CrmWorld` holds them, mapped to HubSpot's names.

companies, contacts, deals and notes are the world's accounts, contacts, deals and notes (so
edits and archives made through `CrmWorld.edit/delete` show here); tickets, calls, emails,
meetings and tasks are derived from the same world deterministically, and owners are the
world's owners. Every object can be edited and archived the same way through
`HubspotData.edit(obj, i, **properties)` and `HubspotData.archive(obj, i)` (the world's
objects through CrmWorld, the derived ones through this module's `Changes`, kept per world so
every view of the company sees them). Nothing else is stored: a record is computed from its
index, a time window is an index range found by bisection (base times grow with the index)
with the few edited or archived records merged in, so a 200,000-contact world serves pages in
constant memory.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.crm_world import (
    NOTE_LINES,
    CrmWorld,
    first_index_at,
    touched,
)

SANDBOX_HUBSPOT_TOKEN = "pat-na1-sandbox-7c1e-4f2a-hubspot"
WORLD_KIND = {"companies": "accounts", "contacts": "contacts", "deals": "deals", "notes": "notes"}
# Derived objects: (id prefix digit, contacts per record).
DERIVED = {"tickets": (5, 10), "calls": (6, 4), "emails": (7, 4), "meetings": (8, 10),
           "tasks": (9, 10)}  # fmt: skip
OBJECTS = ("companies", "contacts", "deals", "tickets", "notes", "calls", "emails", "meetings",
           "tasks")  # fmt: skip
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "tickets": "0-5",
            "calls": "0-48", "emails": "0-49", "meetings": "0-47", "notes": "0-46",
            "tasks": "0-27"}  # fmt: skip
# Custom (not HubSpot-defined) properties the properties API lists, one per main object.
CUSTOM = {"companies": "customer_tier", "contacts": "preferred_channel", "deals": "renewal_risk"}
TIERS, CHANNELS, RISKS = ("gold", "silver", "bronze"), ("email", "phone", "chat"), ("low", "high")


def wid(kind: str, i: int) -> str:
    """The id `CrmWorld` gives record `i` of a kind, without building the record."""
    return f"{('accounts', 'contacts', 'deals', 'notes').index(kind) + 1}{i:08d}"


def modified_property(obj: str) -> str:
    """Contacts keep the old name; every other object has `hs_lastmodifieddate`."""
    return "lastmodifieddate" if obj == "contacts" else "hs_lastmodifieddate"


def iso(epoch: float) -> str:
    """HubSpot's timestamps: UTC ISO 8601 with milliseconds and a Z."""
    ms = math.floor(epoch * 1000)
    text = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


@dataclass(frozen=True)
class HubRecord:
    obj: str
    i: int
    id: str
    created: float
    updated: float
    properties: dict
    associations: dict = field(default_factory=dict)  # object -> [ids]
    archived_at: float | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


class Changes:
    """HubSpot-side changes of one CRM world: property values set through `edit` (any
    object) and the modified/archived times of the derived objects, which CrmWorld does not
    hold. One per world (a benchmark's `CrmWorld.sized` starts a fresh one)."""

    _of: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()
    _of_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.properties: dict[tuple[str, int], dict] = {}
        self.edited_at: dict[tuple[str, int], float] = {}  # derived objects only
        self.archived_at: dict[tuple[str, int], float] = {}  # derived objects only
        self.links_added: set[frozenset] = set()  # {(object, id), (object, id)} pairs
        self.links_removed: set[frozenset] = set()

    @classmethod
    def of(cls, world: CrmWorld) -> Changes:
        with cls._of_lock:
            found = cls._of.get(world)
            if found is None:
                found = cls._of[world] = cls()
            return found

    def touched(self, obj: str) -> set[int]:
        with self.lock:
            return {i for o, i in (*self.edited_at, *self.archived_at) if o == obj}


class HubspotData:
    """The emulator's view of one company's CRM world; `world` is looked up on every call so
    `CrmWorld.sized` (benchmarks) takes effect on a running emulator."""

    def __init__(self, company: Company):
        self.company = company
        self.tokens = {SANDBOX_HUBSPOT_TOKEN}
        self.bare_429s = 0  # next search calls answered 429 without Retry-After
        self.totals: list[tuple[str, int]] = []  # (object, total) per first search page
        self.search_hooks: list = []  # (object, page records) -> None, after each page (api.py)

    @property
    def world(self) -> CrmWorld:
        return CrmWorld.of(self.company)

    # ------------------------------------------------------------------ owners
    def owners(self) -> list[dict]:
        start = self.world.start
        return [
            {"id": str(101 + k), "email": p.email, "firstName": p.name.split(" ")[0],
             "lastName": p.name.partition(" ")[2], "userId": 9001 + k, "createdAt": iso(start),
             "updatedAt": iso(start + 3600 * k), "archived": False,
             "teams": [{"id": "7001", "name": "Sales", "primary": True}]}
            for k, p in enumerate(self.world.owners)
        ]  # fmt: skip

    def owner_id(self, email: str) -> str:
        emails = [p.email for p in self.world.owners]
        return str(101 + emails.index(email)) if email in emails else ""

    # ------------------------------------------------------------------ counts and times
    def count(self, obj: str) -> int:
        world = self.world
        if obj in WORLD_KIND:
            return world.counts[WORLD_KIND[obj]]
        return max(10, world.counts["contacts"] // DERIVED[obj][1])

    def _base_time(self, obj: str, i: int) -> float:
        world = self.world
        if obj in WORLD_KIND:
            return world._base_time(WORLD_KIND[obj], i)
        rng = random.Random(f"{world.seed}:hubspot:{obj}:t:{i}")
        return world.start + (i + rng.random()) * (world.end - world.start) / self.count(obj)

    def _first_index(self, obj: str, t: float) -> int:
        if obj in WORLD_KIND:
            return first_index_at(self.world, WORLD_KIND[obj], t)
        lo, hi = 0, self.count(obj)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if self._base_time(obj, mid) < t else (lo, mid)
        return lo

    @property
    def changes(self) -> Changes:
        return Changes.of(self.world)

    def _touched(self, obj: str) -> set[int]:
        if obj in WORLD_KIND:
            return touched(self.world, WORLD_KIND[obj])
        return self.changes.touched(obj)

    # ------------------------------------------------------------------ mutations
    def edit(self, obj: str, i: int, **properties) -> HubRecord:
        """Sets properties of any object's record `i` as a user would in HubSpot (names as
        the API has them, e.g. firstname, hs_call_body); its modified time becomes now."""
        self._check(obj, i)
        changes = self.changes
        with changes.lock:
            changes.properties.setdefault((obj, i), {}).update(properties)
            if obj not in WORLD_KIND:
                changes.edited_at[(obj, i)] = max(clock.now_epoch(), self._base_time(obj, i))
        if obj in WORLD_KIND:
            self.world.edit(WORLD_KIND[obj], i)  # its modified time, shared with other CRMs
        return self.record(obj, i)

    def archive(self, obj: str, i: int) -> HubRecord:
        """Archives (soft-deletes) any object's record `i`; its modified time becomes now."""
        self._check(obj, i)
        if obj in WORLD_KIND:
            self.world.delete(WORLD_KIND[obj], i)
        else:
            changes = self.changes
            with changes.lock:
                changes.archived_at[(obj, i)] = max(clock.now_epoch(), self._base_time(obj, i))
        return self.record(obj, i)

    def _check(self, obj: str, i: int) -> None:
        if obj not in OBJECTS or not 0 <= i < self.count(obj):
            raise KeyError(f"no HubSpot {obj} record {i}")

    # ------------------------------------------------------------------ records
    def record(self, obj: str, i: int) -> HubRecord:
        if obj in WORLD_KIND:
            return self._from_world(obj, i)
        return self._derived(obj, i)

    def associations_of(self, obj: str, record_id: str) -> dict | None:
        """The associations of a record, both ways (a company's contacts as well as a
        contact's company; None: no such live record), computed without building records
        unless edited or archived; associations to archived records are gone, as in HubSpot."""
        i = self._index(obj, record_id)
        if i is None:
            return None
        if i in self._touched(obj) and self.record(obj, i).archived:
            return None
        found = {**self._forward(obj, i), **self._reverse(obj, i)}
        changes = self.changes
        with changes.lock:
            for pair in changes.links_added | changes.links_removed:
                if (obj, record_id) not in pair:
                    continue
                ((target, tid),) = pair - {(obj, record_id)}
                ids = found.setdefault(target, [])
                if pair in changes.links_added and tid not in ids:
                    ids.append(tid)
                if pair in changes.links_removed and tid in ids:
                    ids.remove(tid)
        for target, ids in found.items():
            gone = self._archived_ids(target)
            found[target] = [t for t in ids if t not in gone]
        return {t: ids for t, ids in found.items() if ids}

    def _forward(self, obj: str, i: int) -> dict[str, list[str]]:
        world, contacts = self.world, self.world.counts["contacts"]
        account = lambda c: wid("accounts", c % world.counts["accounts"])
        if obj == "companies":
            return {}
        if obj == "contacts":
            return {"companies": [account(i)]}
        if obj == "deals":
            return {"companies": [account(i)], "contacts": [wid("contacts", i % contacts)]}
        if obj == "notes":
            c = i % contacts
            deal = wid("deals", i % world.counts["deals"])
            return {"contacts": [wid("contacts", c)], "companies": [account(c)], "deals": [deal]}
        rng = random.Random(f"{world.seed}:hubspot:{obj}:{i}")
        rng.uniform(0, 1)  # as _derived draws: created, then the contact, then the deal
        c, d = rng.randrange(contacts), rng.randrange(world.counts["deals"])
        found = {"contacts": [wid("contacts", c)], "companies": [account(c)]}
        return found if obj == "tickets" else {**found, "deals": [wid("deals", d)]}

    def _reverse(self, obj: str, i: int) -> dict[str, list[str]]:
        """The other side of the world's associations: a company's contacts and deals (by
        account), a contact's deals (a deal's contact is deal index modulo contacts)."""
        counts = self.world.counts
        accounts, contacts, deals = counts["accounts"], counts["contacts"], counts["deals"]
        if obj == "companies":
            return {"contacts": [wid("contacts", c) for c in range(i, contacts, accounts)],
                    "deals": [wid("deals", d) for d in range(i, deals, accounts)]}  # fmt: skip
        if obj == "contacts":
            return {"deals": [wid("deals", d) for d in range(i, deals, contacts)]}
        return {}

    def _archived_ids(self, obj: str) -> set[str]:
        return {r.id for r in (self.record(obj, j) for j in self._touched(obj)) if r.archived}

    # ------------------------------------------------------------------ association changes
    def associate(self, obj: str, record_id: str, target: str, target_id: str) -> None:
        """Associates two records, as a user linking them in HubSpot."""
        self._link(obj, record_id, target, target_id, add=True)

    def dissociate(self, obj: str, record_id: str, target: str, target_id: str) -> None:
        """Removes the association of two records (HubSpot's v4 DELETE or batch/archive)."""
        self._link(obj, record_id, target, target_id, add=False)

    def _link(self, obj: str, record_id: str, target: str, target_id: str, add: bool) -> None:
        pair = frozenset({(obj, record_id), (target, target_id)})
        changes = self.changes
        with changes.lock:
            (changes.links_added if add else changes.links_removed).add(pair)
            (changes.links_removed if add else changes.links_added).discard(pair)
        # Assumed, not documented: HubSpot recalculates a CRM object's num_associated_*
        # properties, which moves its modified date; engagements' dates stay (Airbyte
        # reports associations added to old engagements as never re-synced).
        for side, rid in ((obj, record_id), (target, target_id)):
            if side in ("companies", "contacts", "deals", "tickets"):
                self.edit(side, self._index(side, rid))

    def _index(self, obj: str, record_id: str) -> int | None:
        prefix = OBJECTS_PREFIX[obj]
        if not record_id.isdigit() or not record_id.startswith(prefix):
            return None
        i = int(record_id[len(prefix) :])
        return i if 0 <= i < self.count(obj) else None

    def by_id(self, obj: str, record_id: str) -> HubRecord | None:
        i = self._index(obj, record_id)
        return None if i is None else self.record(obj, i)

    def _from_world(self, obj: str, i: int) -> HubRecord:
        world = self.world
        r = world.record(WORLD_KIND[obj], i)
        f, owner = r.fields, self.owner_id(r.fields["owner_email"])
        rng = random.Random(f"{world.seed}:hubspot:{obj}:custom:{i}")
        if obj == "companies":
            props = {"name": f["name"], "domain": f["domain"], "industry": f["industry"],
                     "city": f["city"], "customer_tier": f.get("customer_tier", rng.choice(TIERS))}  # fmt: skip
            assoc = {}
        elif obj == "contacts":
            props = {"firstname": f["first_name"], "lastname": f["last_name"],
                     "email": f["email"], "phone": f["phone"],
                     "lifecyclestage": f["lifecycle_stage"],
                     "preferred_channel": f.get("preferred_channel", rng.choice(CHANNELS))}  # fmt: skip
            assoc = {"companies": [wid("accounts", f["account"])]}
        elif obj == "deals":
            props = {"dealname": f["name"], "amount": str(f["amount"]), "dealstage": f["stage"],
                     "pipeline": "default", "closedate": iso(f["close_date"]),
                     "renewal_risk": f.get("renewal_risk", rng.choice(RISKS))}  # fmt: skip
            contact = wid("contacts", i % world.counts["contacts"])
            assoc = {"companies": [wid("accounts", f["account"])], "contacts": [contact]}
        else:  # notes
            props = {"hs_note_body": f"<p>{f['body']}</p>", "hs_timestamp": iso(r.created)}
            assoc = {"contacts": [wid("contacts", f["contact"])],
                     "companies": [wid("accounts", f["account"])], "deals": [wid("deals", f["deal"])]}  # fmt: skip
        archived_at = r.updated if r.archived else None
        return self._finish(obj, i, r.id, r.created, r.updated, props, owner, assoc, archived_at)

    def _finish(self, obj, i, rid, created, updated, props, owner, assoc, archived_at):
        changes = self.changes
        with changes.lock:
            edited = changes.properties.get((obj, i), {})
            if obj not in WORLD_KIND:
                archived_at = changes.archived_at.get((obj, i), archived_at)
                updated = max(updated, changes.edited_at.get((obj, i), updated),
                              archived_at or updated)  # fmt: skip
        props = {**props, "hubspot_owner_id": owner, **edited, "hs_object_id": rid,
                 "createdate": iso(created), modified_property(obj): iso(updated)}  # fmt: skip
        return HubRecord(obj, i, rid, created, updated, props, assoc, archived_at)

    def _derived(self, obj: str, i: int) -> HubRecord:
        world = self.world
        rng = random.Random(f"{world.seed}:hubspot:{obj}:{i}")
        updated = self._base_time(obj, i)
        created = updated - rng.uniform(0, 86_400 * 30)
        contact = world.record("contacts", rng.randrange(world.counts["contacts"]))
        account = world.record("accounts", contact.fields["account"])
        deal = wid("deals", rng.randrange(world.counts["deals"]))
        owner = rng.choice(world.owners)
        name = f"{contact.fields['first_name']} {contact.fields['last_name']}"
        line = rng.choice(NOTE_LINES).format(
            contact=name, account=account.fields["name"],
            project=rng.choice(self.company.projects).name,
            key=rng.choice(self.company.issue_keys) if self.company.issue_keys else "SUBS-1",
            owner=owner.name,
        )  # fmt: skip
        props = {
            "tickets": lambda: {"subject": f"{account.fields['name']}: {line[:60]}",
                                "content": line, "hs_pipeline_stage": rng.choice("1234"),
                                "hs_ticket_priority": rng.choice(("LOW", "MEDIUM", "HIGH"))},
            "calls": lambda: {"hs_call_title": f"Call with {name} ({account.fields['name']})",
                              "hs_call_body": line, "hs_call_direction": "OUTBOUND",
                              "hs_call_duration": str(rng.randrange(60, 3600) * 1000),
                              "hs_timestamp": iso(created)},
            "emails": lambda: {"hs_email_subject": f"Re: {account.fields['name']} follow-up",
                               "hs_email_text": f"Hi {name},\n\n{line}\n\n{owner.name}",
                               "hs_email_direction": "EMAIL", "hs_timestamp": iso(created)},
            "meetings": lambda: {"hs_meeting_title": f"{account.fields['name']} sync",
                                 "hs_meeting_body": line,
                                 "hs_meeting_start_time": iso(created),
                                 "hs_meeting_end_time": iso(created + 1800),
                                 "hs_timestamp": iso(created)},
            "tasks": lambda: {"hs_task_subject": f"Follow up with {name}", "hs_task_body": line,
                              "hs_task_status": rng.choice(("NOT_STARTED", "COMPLETED")),
                              "hs_task_priority": "MEDIUM", "hs_timestamp": iso(created)},
        }[obj]()  # fmt: skip
        assoc = {"contacts": [contact.id], "companies": [account.id]}
        if obj != "tickets":
            assoc["deals"] = [deal]
        rid = f"{DERIVED[obj][0]}{i:08d}"
        return self._finish(obj, i, rid, created, updated, props, self.owner_id(owner.email),
                            assoc, None)  # fmt: skip

    # ------------------------------------------------------------------ queries
    def window(self, obj: str, lo: float, hi: float, offset: int) -> tuple[int, Iterator]:
        """(total, the live records modified in [lo, hi) from `offset` on, ascending by
        (modified, id)), without building the records before `offset`."""
        a, b = self._first_index(obj, lo), self._first_index(obj, hi)
        moved = self._touched(obj)
        removed = sorted(i for i in moved if a <= i < b)
        added = []
        for i in moved:
            r = self.record(obj, i)
            if not r.archived and lo <= r.updated < hi:
                added.append((r.updated, i))
        added.sort()
        total = (b - a) - len(removed) + len(added)

        def key(j: int) -> tuple[float, int]:
            return (self._base_time(obj, j), j) if j < b else (math.inf, j)

        def rank(j: int) -> int:  # live records before base index j
            return (j - a) - bisect.bisect_left(removed, j) + bisect.bisect_left(added, key(j))

        lo_j, hi_j = a, b  # the largest j in [a, b] with rank(j) <= offset
        while lo_j < hi_j:
            mid = (lo_j + hi_j + 1) // 2
            lo_j, hi_j = (mid, hi_j) if rank(mid) <= offset else (lo_j, mid - 1)
        start = lo_j
        floor, before = key(start), rank(start)
        if before > offset:  # only at start == a: edited records come before every base one
            floor, before = (-math.inf, -1), 0
        skip = set(removed)
        bases = ((key(j), j) for j in range(start, b) if j not in skip)
        extra = [((t, i), i) for t, i in added if (t, i) >= floor]
        merged = heapq.merge(bases, extra)
        for _ in range(offset - before):
            next(merged, None)
        return total, (self.record(obj, i) for _, i in merged)

    def archived(self, obj: str) -> list[HubRecord]:
        """Archived records, by id (HubSpot lists only archived ones with archived=true)."""
        found = [self.record(obj, i) for i in sorted(self._touched(obj))]
        return [r for r in found if r.archived]


OBJECTS_PREFIX = {obj: str(n) for obj, (n, _) in DERIVED.items()} | {
    "companies": "1", "contacts": "2", "deals": "3", "notes": "4"
}  # fmt: skip
