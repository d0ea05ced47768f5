"""The Genius-like database's rows, derived from the shared CRM world (same customers, people).

There is no public Genius reference: the schema is our own documented interface (see
`sync_pipelines/sources/genius/schema.py`), and this module is its one implementation:

    customers     <- the world's accounts (Globex, Initech, ... first)   deleted_at
    appointments  <- its contacts (a sales appointment with each one)     deleted_at
    jobs          <- its deals                                            deleted_at
    notes         <- its notes                                            is_deleted
    payments      <- one per won deal; no updated_at (read by full refresh; a payment
                     removed upstream is a hard DELETE)

DATETIME columns carry no zone: they hold wall-clock times of the database's `timezone`
(UTC unless a test says otherwise), whole seconds, as the legacy application wrote them. Ids
are the world's index + 1. Rows are computed one at a time, so seeding 200k rows streams.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sync_pipelines_sandbox.crm_world import CrmWorld, Record

TABLES = ("customers", "appointments", "jobs", "notes", "payments")
KIND_OF = {"customers": "accounts", "appointments": "contacts", "jobs": "deals", "notes": "notes"}
STATUS_OF_STAGE = {"lead": "scheduled", "opportunity": "confirmed", "customer": "completed"}
WON = "closedwon"
METHODS = ("card", "check", "ach", "financing")

DDL = (
    """CREATE TABLE customers (
        id INT PRIMARY KEY, name VARCHAR(200) NOT NULL, email_domain VARCHAR(200),
        industry VARCHAR(60), city VARCHAR(60), sales_rep_email VARCHAR(200),
        created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, deleted_at DATETIME NULL,
        KEY updated (updated_at, id))""",
    """CREATE TABLE appointments (
        id INT PRIMARY KEY, customer_id INT NOT NULL, contact_name VARCHAR(200),
        contact_email VARCHAR(200), contact_phone VARCHAR(40), sales_rep_email VARCHAR(200),
        status VARCHAR(40), scheduled_at DATETIME, description TEXT,
        created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, deleted_at DATETIME NULL,
        KEY updated (updated_at, id))""",
    """CREATE TABLE jobs (
        id INT PRIMARY KEY, customer_id INT NOT NULL, name VARCHAR(300), status VARCHAR(40),
        amount DECIMAL(12, 2), sales_rep_email VARCHAR(200), scheduled_date DATE,
        description TEXT, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
        deleted_at DATETIME NULL, KEY updated (updated_at, id))""",
    """CREATE TABLE notes (
        id INT PRIMARY KEY, customer_id INT, appointment_id INT, job_id INT,
        author_email VARCHAR(200), body TEXT NOT NULL, created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL, is_deleted TINYINT(1) NOT NULL DEFAULT 0,
        KEY updated (updated_at, id))""",
    """CREATE TABLE payments (
        id INT PRIMARY KEY, job_id INT NOT NULL, amount DECIMAL(12, 2) NOT NULL,
        method VARCHAR(20) NOT NULL, paid_on DATE NOT NULL, reference VARCHAR(40))""",
)


class Rows:
    """Turns world records into the rows of each table, in the database's wall-clock zone."""

    def __init__(self, world: CrmWorld, timezone: str = "UTC"):
        self.world = world
        self.zone = ZoneInfo(timezone)

    def wall(self, epoch: float | None) -> datetime | None:
        """Epoch seconds as the naive DATETIME the application stores (whole seconds)."""
        if epoch is None:
            return None
        return datetime.fromtimestamp(int(epoch), UTC).astimezone(self.zone).replace(tzinfo=None)

    def day(self, epoch: float) -> date:
        return datetime.fromtimestamp(int(epoch), UTC).astimezone(self.zone).date()

    def _times(self, r: Record) -> dict:
        return {
            "created_at": self.wall(min(r.created, r.updated)),
            "updated_at": self.wall(r.updated),
        }

    def _deleted_at(self, r: Record) -> datetime | None:
        return self.wall(r.updated) if r.archived else None

    def row(self, table: str, i: int) -> dict:
        """The row of `table` for world index i (payments: of deal i; KeyError if none)."""
        if table == "payments":
            return self.payment(i)
        r = self.world.record(KIND_OF[table], i)
        f = r.fields
        if table == "customers":
            return {"id": i + 1, "name": f["name"], "email_domain": f["domain"],
                    "industry": f["industry"], "city": f["city"],
                    "sales_rep_email": f["owner_email"], **self._times(r),
                    "deleted_at": self._deleted_at(r)}  # fmt: skip
        if table == "appointments":
            account = self.world.account_name(f["account"])
            who = f"{f['first_name']} {f['last_name']}"
            status = STATUS_OF_STAGE.get(f["lifecycle_stage"], "scheduled")
            return {"id": i + 1, "customer_id": f["account"] + 1, "contact_name": who,
                    "contact_email": f["email"], "contact_phone": f["phone"],
                    "sales_rep_email": f["owner_email"], "status": status,
                    "scheduled_at": self.wall(r.created + 86_400 * 3),
                    "description": f"In-home sales appointment with {who} of {account} "
                                   f"({status}); rep {f['owner_email']}.",
                    **self._times(r), "deleted_at": self._deleted_at(r)}  # fmt: skip
        if table == "jobs":
            return {"id": i + 1, "customer_id": f["account"] + 1, "name": f["name"],
                    "status": f["stage"], "amount": f["amount"],
                    "sales_rep_email": f["owner_email"], "scheduled_date": self.day(f["close_date"]),
                    "description": f"Job {f['name']}: {f['stage']}, {f['amount']:.2f} USD.",
                    **self._times(r), "deleted_at": self._deleted_at(r)}  # fmt: skip
        return {"id": i + 1, "customer_id": f["account"] + 1, "appointment_id": f["contact"] + 1,
                "job_id": f["deal"] + 1, "author_email": f["owner_email"], "body": f["body"],
                **self._times(r), "is_deleted": int(r.archived)}  # fmt: skip

    def payment(self, deal: int) -> dict:
        r = self.world.record("deals", deal)
        if r.fields["stage"] != WON:
            raise KeyError(f"deal {deal} is not won: no payment")
        rng = random.Random(f"{self.world.seed}:payments:{deal}")
        return {"id": deal + 1, "job_id": deal + 1,
                "amount": round(r.fields["amount"] * rng.choice((0.25, 0.5, 1.0)), 2),
                "method": rng.choice(METHODS), "paid_on": self.day(r.updated),
                "reference": f"PAY-{deal + 1:06d}"}  # fmt: skip

    def all(self, table: str) -> Iterator[dict]:
        if table == "payments":
            for i in range(self.world.counts["deals"]):
                if self.world.record("deals", i).fields["stage"] == WON:
                    yield self.payment(i)
            return
        for i in range(self.world.counts[KIND_OF[table]]):
            yield self.row(table, i)


DOCUMENT_TABLES = ("appointments", "jobs", "notes")  # the rows the index gets, as the source says


def expected_doc_ids(world: CrmWorld, connection: str, start: float, end: float) -> set[str]:
    """The documents a sync of [start, end) yields: appointments, jobs and notes updated then
    and not deleted (doc id `genius:<connection>:<table>/<id>`)."""
    found = set()
    for table in DOCUMENT_TABLES:
        for r in world.updated_between(KIND_OF[table], start, end):
            if not r.archived:
                found.add(f"genius:{connection}:{table}/{r.i + 1}")
    return found
