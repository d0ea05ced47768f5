"""The sandbox company's Tempo worklogs: time the company's people logged on its Jira issues.

Derived deterministically from the `Company` and its Jira site (`JiraSite.of`): authors are
the Jira accounts of the company's people (plus one former employee Jira no longer knows),
issues are the site's issues, referenced by numeric id as Tempo does. Some descriptions name
the issue key, some do not, and a few name another issue ("see OPS-12"): a description is free
text, only `issue.id` says which issue a worklog is on. A few worklogs are on the archived
`LEGACY` project. `TempoWorklogs.of(company)` returns the one store of a company object,
shared by the emulator and the tests, which edit and delete worklogs in it. The count scales
with the company's message count; nothing is stamped later than now - 60 s.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
import weakref
from dataclasses import dataclass

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import ARCHIVED_PROJECT, JiraIssue, JiraSite
from sync_pipelines_sandbox.text import CUSTOMERS, SERVICES

SANDBOX_TEMPO_TOKEN = "tempo-sandbox-token"
ISSUE_KEY = re.compile(r"\b[A-Z][A-Z0-9_]+-\d+\b")
FORMER_EMPLOYEE = "712020:00000000-0000-4000-8000-00000000dead"
FIRST_WORKLOG_ID = 4_000
_DAY = 86_400
ACTIVITIES = (
    "Code review",
    "Pairing on the retry logic in {s}",
    "Customer call with {c}",
    "Sprint planning",
    "Investigating the {s} timeout",
    "Writing tests for {s}",
    "Fixed UTF-8 decoding in the {s} importer",
    "Deploy and smoke tests for {s}",
    "Documentation for the {s} API",
    "Réunion de suivi avec {c}",
    "Refinement der Tickets mit dem Team",
    "On-call handover",
)
# Descriptions naming another issue {o}, with or without the worklog's own {k}.
MENTIONS = ("{a}, see {o}", "Blocked by {o}: {a}", "{o} follow-up on {k}: {a}")
MENTION_EVERY = 12  # one worklog in 12 names another issue


@dataclass(slots=True)
class Worklog:
    id: int
    issue: JiraIssue  # ground truth; Tempo serves only its id
    author: str  # Jira account id
    seconds: int
    billable_seconds: int
    start_date: str  # YYYY-MM-DD, the day the work was done
    start_time: str  # HH:MM:SS
    description: str
    created: int  # epoch seconds
    updated: int

    @property
    def keys_in_description(self) -> list[str]:
        """Every issue-key-shaped word of the description, in order ("UTF-8" included)."""
        return ISSUE_KEY.findall(self.description)

    @property
    def key_in_description(self) -> bool:
        return self.issue.key in self.keys_in_description


class TempoWorklogs:
    """Every worklog of the company, by id, under one lock (edits bump `updated`)."""

    def __init__(self, company: Company):
        self.company = company
        self.site = JiraSite.of(company)
        self.lock = threading.RLock()
        self.worklogs: dict[int, Worklog] = {}
        self._generate()

    @classmethod
    def of(cls, company: Company) -> TempoWorklogs:
        with _STORES_LOCK:
            store = _STORES.get(company)
            if store is None:
                store = _STORES[company] = cls(company)
            return store

    def _generate(self) -> None:
        company = self.company
        rng = random.Random(f"tempo:{company.seed}")
        start, end = company.span()
        live = self.site.searchable()
        legacy = [i for i in self.site.issues.values() if i.project == ARCHIVED_PROJECT]
        authors = [a for a in self.site.users if a != self.site.account.account_id]
        drafts = []
        for _ in range(max(40, company.message_count // 5)):
            issue = rng.choice(legacy) if rng.random() < 0.05 else rng.choice(live)
            if rng.random() < 0.85:
                updated = start + int(rng.random() * (end - start))
            else:
                updated = start - rng.randint(1, 20 * _DAY)
            created = updated if rng.random() < 0.7 else updated - rng.randint(60, 3 * _DAY)
            work_day = dt.datetime.fromtimestamp(created, dt.UTC).date()
            work_day -= dt.timedelta(days=rng.choice((0, 0, 0, 1, 2)))
            activity = rng.choice(ACTIVITIES).format(
                s=rng.choice(SERVICES), c=rng.choice(CUSTOMERS)
            )
            if rng.random() < 0.55:
                template = rng.choice(("{k}: {a}", "{a} ({k})", "{k} {a}"))
                description = template.format(k=issue.key, a=activity)
            else:
                description = activity
            seconds = 900 * rng.choice((1, 2, 2, 4, 4, 4, 6, 8, 12, 16, 32))
            drafts.append(
                (
                    created,
                    issue,
                    FORMER_EMPLOYEE if rng.random() < 0.03 else rng.choice(authors),
                    seconds,
                    0 if rng.random() < 0.2 else seconds,
                    work_day.isoformat(),
                    f"{rng.randint(8, 17):02d}:{rng.choice((0, 15, 30, 45)):02d}:00",
                    description,
                    updated,
                )
            )
        drafts.sort(key=lambda d: d[0])  # Tempo's ids grow with creation time
        for n, (created, *fields, updated) in enumerate(drafts):
            worklog_id = FIRST_WORKLOG_ID + n
            self.worklogs[worklog_id] = Worklog(worklog_id, *fields, created, updated)
        self._mention_other_issues(live)

    def _mention_other_issues(self, live: list[JiraIssue]) -> None:
        """Make every 12th description, and the first on the archived project, name another
        live issue (their own RNG: the other worklogs stay as they were)."""
        rng = random.Random(f"tempo-mentions:{self.company.seed}")
        ordered = [self.worklogs[i] for i in sorted(self.worklogs)]
        archived = [w for w in ordered if w.issue.project == ARCHIVED_PROJECT][:1]
        chosen = ordered[MENTION_EVERY // 2 :: MENTION_EVERY] + archived
        for n, worklog in enumerate(chosen):
            other = rng.choice([i for i in live if i.key != worklog.issue.key])
            activity = rng.choice(ACTIVITIES).format(
                s=rng.choice(SERVICES), c=rng.choice(CUSTOMERS)
            )
            template = MENTIONS[n % len(MENTIONS)]
            worklog.description = template.format(a=activity, o=other.key, k=worklog.issue.key)

    # ----------------------------------------------------------------- reads
    def ordered(self) -> list[Worklog]:
        with self.lock:
            return [self.worklogs[i] for i in sorted(self.worklogs)]

    def worklog(self, worklog_id: int) -> Worklog | None:
        with self.lock:
            return self.worklogs.get(worklog_id)

    def updated_between(self, start: float, end: float) -> list[Worklog]:
        """Ground truth: worklogs whose `updatedAt` lies in [start, end) (epoch seconds)."""
        return [w for w in self.ordered() if start <= w.updated < end]

    # ----------------------------------------------------------------- mutations
    def log_work(self, issue: JiraIssue, author: str, seconds: int, description: str) -> Worklog:
        """A new worklog on `issue` (any `JiraIssue`, e.g. one Jira no longer has), logged now."""
        with self.lock:
            now = int(clock.now_epoch())
            worklog_id = max(self.worklogs, default=FIRST_WORKLOG_ID - 1) + 1
            day = dt.datetime.fromtimestamp(now, dt.UTC)
            self.worklogs[worklog_id] = Worklog(
                worklog_id,
                issue,
                author,
                seconds,
                seconds,
                day.date().isoformat(),
                day.strftime("%H:%M:%S"),
                description,
                now,
                now,
            )
            return self.worklogs[worklog_id]

    def edit_worklog(
        self, worklog_id: int, description: str | None = None, seconds: int | None = None
    ) -> Worklog:
        """The author edits a worklog now (its `updatedAt` becomes now); returns it."""
        with self.lock:
            worklog = self.worklogs[worklog_id]
            if description is not None:
                worklog.description = description
            if seconds is not None:
                worklog.seconds = seconds
                worklog.billable_seconds = min(worklog.billable_seconds, seconds)
            worklog.updated = max(int(clock.now_epoch()), worklog.updated + 1)
            return worklog

    def delete_worklog(self, worklog_id: int) -> Worklog:
        """The author deletes a worklog: it leaves every listing and its id answers 404, with
        no trace left (Tempo keeps none); returns it."""
        with self.lock:
            return self.worklogs.pop(worklog_id)


_STORES: weakref.WeakKeyDictionary[Company, TempoWorklogs] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()
