"""The synthetic company's customers as its CRMs hold them: accounts, contacts, deals, notes.

Every CRM emulator serves this one world, derived from the `Company` (its people own the deals
and write the notes, its projects and issue keys are what the notes discuss) and from
`text.CUSTOMERS` (the accounts the chat and the recorded calls talk about come first), so a
search for a customer finds it across CRM, chat and calls. No vendor is named here.

Records are computed from their index on demand (a per-record RNG), never stored, so a world of
200,000 contacts costs no memory; a record's `updated` time grows with its index across the
company's span, so a time window is an index range. Edits and deletions are overlays:
`edit(kind, i, **fields)` bumps the record's `updated` to now, `delete(kind, i)` archives it.
"""

from __future__ import annotations

import bisect
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Person
from sync_pipelines_sandbox.per_company import PerCompany
from sync_pipelines_sandbox.text import CUSTOMERS, FIRST_NAMES, LAST_NAMES, email_local

KINDS = ("accounts", "contacts", "deals", "notes")
STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
          "decisionmakerboughtin", "contractsent", "closedwon", "closedlost")  # fmt: skip
INDUSTRIES = ("Retail", "Manufacturing", "Healthcare", "Logistics", "Finance", "Hospitality")
_SUFFIXES = ("Labs", "Systems", "Group", "Holdings", "Partners", "Works", "Foods", "Energy")
_WORDS = ("Acorn", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor",
          "Iris", "Juniper", "Keystone", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer")  # fmt: skip
NOTE_LINES = (
    "Call with {contact} about the {project} rollout; they asked for a date on {key}.",
    "{contact} ({account}) reported that {key} still blocks their team.",
    "Renewal discussion with {account}: pricing agreed, legal review pending.",
    "Demo of {project} for {contact}; follow-up scheduled with {owner}.",
    "{account} wants SSO before signing; {owner} to confirm with engineering ({key}).",
)


@dataclass(frozen=True)
class Record:
    """One CRM record: `kind`, its index `i` (its id is derived from it), times in epoch
    seconds, and the fields every CRM maps to its own names."""

    kind: str
    i: int
    created: float
    updated: float
    fields: dict = field(hash=False)
    archived: bool = False

    @property
    def id(self) -> str:
        return f"{KINDS.index(self.kind) + 1}{self.i:08d}"


class CrmWorld:
    """Counts per kind scale with `contacts` (accounts = contacts/5, deals = contacts/3,
    notes = contacts/2); the first accounts are the customers of `text.CUSTOMERS`."""

    def __init__(self, company: Company, contacts: int | None = None):
        self.company = company
        self.seed = company.seed
        humans = [p for p in company.people if not p.is_bot]
        self.owners: list[Person] = humans[: max(3, len(humans) // 4)]
        n = contacts if contacts is not None else max(60, company.message_count // 10)
        self.counts = {
            "contacts": n,
            "accounts": max(len(CUSTOMERS), n // 5),
            "deals": max(len(CUSTOMERS), n // 3),
            "notes": max(10, n // 2),
        }
        self.start, self.end = company.span()
        self.lock = threading.RLock()
        self._edits: dict[tuple[str, int], dict] = {}
        self._edited_at: dict[tuple[str, int], float] = {}
        self._archived: dict[tuple[str, int], float] = {}
        self._moved: dict[str, list[tuple[float, int]]] = {k: [] for k in KINDS}  # sorted

    # ----------------------------------------------------------------- one world per company
    _worlds: ClassVar[PerCompany[CrmWorld]] = PerCompany()

    @classmethod
    def of(cls, company: Company) -> CrmWorld:
        """The company's CRM world; built on first use, then shared (emulators, ground truth)."""
        return cls._worlds.get(company, cls)

    @classmethod
    def sized(cls, company: Company, contacts: int) -> CrmWorld:
        """A world of a given size for benchmarks (replaces the company's shared one)."""
        return cls._worlds.rebuild(company, lambda c: cls(c, contacts))

    # ----------------------------------------------------------------- records
    def _base_time(self, kind: str, i: int) -> float:
        n = self.counts[kind]
        rng = random.Random(f"{self.seed}:{kind}:t:{i}")
        return self.start + (i + rng.random()) * (self.end - self.start) / n

    def record(self, kind: str, i: int) -> Record:
        if not 0 <= i < self.counts[kind]:
            raise KeyError(f"{kind} {i}")
        updated = self._base_time(kind, i)
        age = random.Random(f"{self.seed}:{kind}:c:{i}").uniform(0, 86_400 * 60)
        created = max(self.start - 86_400 * 30, updated - age)
        # The same generator as other records use to refer to this one (a note's contact).
        fields = getattr(self, f"_{kind}")(random.Random(f"{self.seed}:{kind}:{i}"), i)
        key = (kind, i)
        with self.lock:
            fields.update(self._edits.get(key, {}))
            updated = self._edited_at.get(key, updated)
            archived_at = self._archived.get(key)
        if archived_at is not None:
            updated = max(updated, archived_at)
        return Record(kind, i, created, updated, fields, archived_at is not None)

    def _accounts(self, rng: random.Random, i: int) -> dict:
        name = (
            CUSTOMERS[i]
            if i < len(CUSTOMERS)
            else f"{_WORDS[i % len(_WORDS)]} {_SUFFIXES[(i // len(_WORDS)) % len(_SUFFIXES)]} {i}"
        )
        domain = re.sub(r"[^a-z0-9]+", "", name.lower()) + ".example"
        return {"name": name, "domain": domain, "industry": rng.choice(INDUSTRIES),
                "city": rng.choice(("Berlin", "Austin", "Lyon", "Osaka", "Lagos", "Lima")),
                "owner_email": rng.choice(self.owners).email}  # fmt: skip

    def _contacts(self, rng: random.Random, i: int) -> dict:
        account = i % self.counts["accounts"]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        domain = self._accounts(random.Random(f"{self.seed}:accounts:{account}"), account)["domain"]
        return {"first_name": first, "last_name": last,
                "email": f"{email_local(f'{first} {last}')}.{i}@{domain}",
                "phone": f"+1-555-{rng.randrange(10**7):07d}", "account": account,
                "lifecycle_stage": rng.choice(("lead", "opportunity", "customer")),
                "owner_email": rng.choice(self.owners).email}  # fmt: skip

    def _deals(self, rng: random.Random, i: int) -> dict:
        account = i % self.counts["accounts"]
        project = rng.choice(self.company.projects)
        name = self._accounts(random.Random(f"{self.seed}:accounts:{account}"), account)["name"]
        return {"name": f"{name} – {project.name} {rng.choice(('renewal', 'expansion', 'pilot'))}",
                "amount": round(rng.uniform(2_000, 250_000), 2), "stage": rng.choice(STAGES),
                "account": account, "owner_email": rng.choice(self.owners).email,
                "close_date": self.end + rng.randrange(-30, 90) * 86_400}  # fmt: skip

    def _notes(self, rng: random.Random, i: int) -> dict:
        contact_i = i % self.counts["contacts"]
        contact = self._contacts(random.Random(f"{self.seed}:contacts:{contact_i}"), contact_i)
        account = contact["account"]
        name = self._accounts(random.Random(f"{self.seed}:accounts:{account}"), account)["name"]
        owner = rng.choice(self.owners)
        body = rng.choice(NOTE_LINES).format(
            contact=f"{contact['first_name']} {contact['last_name']}",
            account=name,
            project=rng.choice(self.company.projects).name,
            key=rng.choice(self.company.issue_keys) if self.company.issue_keys else "SUBS-1",
            owner=owner.name,
        )
        return {"body": body, "contact": contact_i, "account": account,
                "deal": i % self.counts["deals"], "owner_email": owner.email}  # fmt: skip

    # ----------------------------------------------------------------- queries
    def updated_between(self, kind: str, start: float, end: float) -> Iterator[Record]:
        """Records whose `updated` lies in [start, end), ascending by (updated, id); archived
        ones included (a CRM shows them to a query for archived records)."""
        found = []
        for i in self._index_range(kind, start, end):
            record = self.record(kind, i)
            if start <= record.updated < end:
                found.append(record)
        with self.lock:
            moved = [i for t, i in self._moved[kind] if start <= t < end]
        for i in moved:
            record = self.record(kind, i)
            if start <= record.updated < end and all(r.i != i for r in found):
                found.append(record)
        return iter(sorted(found, key=lambda r: (r.updated, r.i)))

    def _index_range(self, kind: str, start: float, end: float) -> range:
        n, span = self.counts[kind], (self.end - self.start) or 1
        lo = max(0, int((start - self.start) * n / span) - 1)
        hi = min(n, int((end - self.start) * n / span) + 2)
        return range(lo, max(lo, hi))

    def all(self, kind: str) -> Iterator[Record]:
        return (self.record(kind, i) for i in range(self.counts[kind]))

    def account_name(self, i: int) -> str:
        return self.record("accounts", i).fields["name"]

    # ----------------------------------------------------------------- mutations
    def edit(self, kind: str, i: int, **changes) -> Record:
        """Changes fields of a record as a user would; its `updated` becomes now."""
        now = clock.now_epoch()
        with self.lock:
            self._edits.setdefault((kind, i), {}).update(changes)
            self._edited_at[(kind, i)] = now
            bisect.insort(self._moved[kind], (now, i))
        return self.record(kind, i)

    def delete(self, kind: str, i: int) -> Record:
        """Archives a record (a CRM's soft delete); its `updated` becomes now."""
        now = clock.now_epoch()
        with self.lock:
            self._archived[(kind, i)] = now
            bisect.insort(self._moved[kind], (now, i))
        return self.record(kind, i)


def with_fields(record: Record, **changes) -> Record:
    """A copy of a record with some fields replaced (for emulators' views)."""
    return replace(record, fields={**record.fields, **changes})


def first_index_at(world: CrmWorld, kind: str, t: float) -> int:
    """The first index whose unedited `updated` is at or after `t`: base times grow strictly
    with the index, so a time window is an index range found by bisection (no record built)."""
    lo, hi = 0, world.counts[kind]
    while lo < hi:
        mid = (lo + hi) // 2
        if world._base_time(kind, mid) < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def touched(world: CrmWorld, kind: str) -> set[int]:
    """Indices of records edited or archived since the world was built (their times moved)."""
    with world.lock:
        return {i for _, i in world._moved[kind]}
