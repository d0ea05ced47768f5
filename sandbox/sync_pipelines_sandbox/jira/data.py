"""The sandbox company's Jira Cloud site: users, projects, issues and their comments.

Derived deterministically from the `Company`: every issue key the Slack chatter mentions is an
issue here, in the company's projects, assigned to and discussed by the company's people.
`JiraSite.of(company)` returns the one site of a company object: the emulator serves it and
tests read their ground truth from the same, mutable store. Most issues were last updated
during the company's days (some earlier); nothing is stamped later than now - 60 s.

Besides the company's projects the site holds one archived project (`LEGACY`): archived
projects are not listed by the project search and their issues are not searchable, but an
issue is still readable by id. Tempo worklogs on it are how "inactive project" shows up.

Tests can delete an issue (gone from search, 404 by id or key) or move it to another live
project (same id, a new key there; its old key still finds it, as Jira keeps a moved issue's
former keys), as a person would in Jira's UI.
"""

from __future__ import annotations

import random
import threading
import uuid
import weakref
from dataclasses import dataclass, field

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Person, Project
from sync_pipelines_sandbox.text import CUSTOMERS, SERVICES

SITE_URL = "https://acme-sandbox.atlassian.net"
ACCOUNT_TIMEZONE = "Asia/Kolkata"  # +05:30: JQL dates are read in the account's time zone
SANDBOX_JIRA_EMAIL = "jira-sync@acme.test"
SANDBOX_JIRA_TOKEN = "ATATT-sandbox-jira-token"
ARCHIVED_PROJECT = Project("LEGACY", "Legacy Intranet")
FIRST_ISSUE_ID = 10_000
_DAY = 86_400
_ACCOUNT_NS = uuid.UUID("6f1c3d1e-5a0b-4c57-9a52-0d8f5e3b7a10")

STATUSES = (  # name, status id, category key, category name
    ("To Do", "10000", "new", "To Do"),
    ("In Progress", "3", "indeterminate", "In Progress"),
    ("In Review", "10001", "indeterminate", "In Progress"),
    ("Done", "10002", "done", "Done"),
)
PRIORITIES = (("Highest", "1"), ("High", "2"), ("Medium", "3"), ("Low", "4"), ("Lowest", "5"))
ISSUE_TYPES = (("Bug", "10004"), ("Story", "10001"), ("Task", "10002"), ("Epic", "10000"))
LABELS = (
    "backend", "frontend", "customer", "tech-debt", "security", "performance", "ux", "infra",
    "billing", "needs-triage",
)  # fmt: skip
FEATURES = (
    "SSO login", "an audit log", "usage-based billing", "webhook retries", "CSV export",
    "dark mode", "rate limiting", "saved searches", "two-factor auth", "bulk edit",
)  # fmt: skip
SUMMARIES = (
    "{s}: timeout when the upstream call takes more than 30 s",
    "Add {f} to {j}",
    "{c} asks for {f}",
    "Flaky integration test in {s}",
    "Migrate {s} to the new connection pool",
    "{s} returns 500 on empty payloads",
    "Document the {j} rate limits",
    "Spike: evaluate {f} for {j}",
    "Reduce p95 latency of {s}",
    "Café order names break the {s} CSV export (UTF-8)",
    "Rotate the {s} credentials before the audit",
    "Dashboard for {j} adoption",
)
SENTENCES = (
    "Customers on the {c} account see this about once a day.",
    "Steps to reproduce: call {s} with an expired token and wait for the retry.",
    "The fix probably belongs in {s}; the client side only needs a clearer error.",
    "We agreed in planning to ship this behind a feature flag.",
    "Acceptance criteria: the {j} dashboard shows the new numbers within a minute.",
    "Logs from the last incident are attached to the postmortem.",
    "Related to the work {c} requested for the renewal.",
    "Le correctif doit être validé par l'équipe {j} avant jeudi.",
    "Bitte auch die Migration für {s} prüfen — danke!",
    "この不具合は {s} の再試行処理に関係しています。",
)
COMMENTS = (
    "I can reproduce this on staging.",
    "PR is up, could someone review it?",
    "Moved to review, the fix was a missing index.",
    "{c} confirmed the workaround helps for now.",
    "Blocked until the {s} deploy goes out.",
    "Added logs from production, see the attachment.",
    "Estimated at 3 points.",
    "Merci, ça marche maintenant ✅",
    "Closing as done, verified on production.",
    "Let's pair on this tomorrow morning.",
)
BULLETS = (
    "check the {s} dashboards",
    "update the runbook",
    "notify {c}",
    "add a regression test",
    "write the release note",
)


def account_id(person: Person) -> str:
    """Jira Cloud account id of a company person (stable for a given Slack user id)."""
    return f"712020:{uuid.uuid5(_ACCOUNT_NS, person.user_id)}"


def issue_id(index: int) -> str:
    """Numeric id (as Jira serializes it: a string) of the issue at `index` of the site."""
    return str(FIRST_ISSUE_ID + index)


@dataclass(frozen=True, slots=True)
class JiraUser:
    account_id: str
    display_name: str
    email: str
    active: bool = True


# Rich text, rendered as ADF (API v3) or wiki markup (v2) by the emulator:
# a block is ("p", [spans]) or ("bullets", [str, ...]); a span is ("text", s) or ("mention", id).
Span = tuple[str, str]
Block = tuple[str, list]


@dataclass(slots=True)
class JiraComment:
    id: str
    author: str  # account id
    body: list[Block]
    created_ms: int
    updated_ms: int


@dataclass(slots=True)
class JiraIssue:
    id: str
    key: str
    project: Project
    summary: str
    description: list[Block]
    status: tuple[str, str, str, str]
    issue_type: tuple[str, str]
    priority: tuple[str, str]
    labels: list[str]
    assignee: str | None  # account id
    reporter: str
    created_ms: int
    updated_ms: int
    comments: list[JiraComment] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.key.rpartition("-")[2])


def plain_text(blocks: list[Block], users: dict[str, JiraUser]) -> str:
    """The text a reader sees: blocks on their own lines, bullets as "- ", mentions as @Name.

    This is the ground truth for a client flattening the ADF the emulator serves.
    """
    lines = []
    for kind, content in blocks:
        if kind == "p":
            lines.append(
                "".join(
                    "@" + users[value].display_name if span == "mention" else value
                    for span, value in content
                )
            )
        else:
            lines.extend(f"- {item}" for item in content)
    return "\n".join(lines)


class JiraSite:
    """Everything the Jira emulator serves, under one lock (edits bump `updated`)."""

    def __init__(self, company: Company):
        self.company = company
        self.lock = threading.RLock()
        self.account = JiraUser(
            f"712020:{uuid.uuid5(_ACCOUNT_NS, 'jira-sync')}", "Jira Sync", SANDBOX_JIRA_EMAIL
        )
        self.users: dict[str, JiraUser] = {self.account.account_id: self.account}
        for person in company.people:
            if not person.is_bot:
                self.users[account_id(person)] = JiraUser(
                    account_id(person), person.name, person.email
                )
        self.projects: list[Project] = list(company.projects)  # live, listed, searchable
        self.archived_projects: list[Project] = [ARCHIVED_PROJECT]
        self.issues: dict[str, JiraIssue] = {}  # by key
        self.by_id: dict[str, JiraIssue] = {}
        self.former_keys: dict[str, str] = {}  # a moved issue's old key -> its id
        self._last_number: dict[str, int] = {}  # per project: Jira never reuses a key
        self._next_comment = 20_000
        self._generate()

    @classmethod
    def of(cls, company: Company) -> JiraSite:
        """The site of this company object (built once, then shared and mutated in place)."""
        with _SITES_LOCK:
            site = _SITES.get(company)
            if site is None:
                site = _SITES[company] = cls(company)
            return site

    # ----------------------------------------------------------------- generation
    def _generate(self) -> None:
        company = self.company
        rng = random.Random(f"jira:{company.seed}")
        start, end = company.span()
        projects = {p.key: p for p in self.projects}
        keys = list(company.issue_keys)
        legacy = [f"{ARCHIVED_PROJECT.key}-{n}" for n in sorted(rng.sample(range(1, 60), 6))]
        for index, key in enumerate(keys + legacy):
            project = projects.get(key.partition("-")[0], ARCHIVED_PROJECT)
            if project is ARCHIVED_PROJECT:  # archived two months before the span
                updated = start - rng.randint(60, 90) * _DAY
            elif rng.random() < 0.15:  # untouched during the span
                updated = start - rng.randint(1, 45) * _DAY - rng.randint(0, _DAY)
            else:
                updated = start + rng.random() * (end - start)
            issue = self._make_issue(rng, issue_id(index), key, project, int(updated * 1000))
            self.issues[key] = issue
            self.by_id[issue.id] = issue
            last = self._last_number.get(project.key, 0)
            self._last_number[project.key] = max(last, issue.number)
        # a couple of long discussions, longer than a search result shows
        for issue in rng.sample(list(self.issues.values())[: len(keys)], 2):
            while len(issue.comments) < 25:
                self._add_comment(rng, issue, rng.randint(issue.created_ms, issue.updated_ms))
            issue.comments.sort(key=lambda c: c.created_ms)

    def _humans(self) -> list[str]:
        return [u for u in self.users if u != self.account.account_id]

    def _fill(self, rng: random.Random, template: str, project: Project) -> str:
        return template.format(
            s=rng.choice(SERVICES), c=rng.choice(CUSTOMERS), j=project.name, f=rng.choice(FEATURES)
        )

    def _make_issue(
        self, rng: random.Random, iid: str, key: str, project: Project, updated_ms: int
    ) -> JiraIssue:
        humans = self._humans()
        created_ms = updated_ms - rng.randint(600, 60 * _DAY) * 1000
        sentences = [self._fill(rng, rng.choice(SENTENCES), project) for _ in range(3)]
        description: list[Block] = [("p", [("text", " ".join(sentences[: rng.randint(1, 3)]))])]
        if rng.random() < 0.4:
            description.append(("p", [("text", "cc "), ("mention", rng.choice(humans))]))
        if rng.random() < 0.3:
            items = rng.sample(BULLETS, rng.randint(2, 4))
            description.append(("bullets", [self._fill(rng, b, project) for b in items]))
        issue = JiraIssue(
            id=iid,
            key=key,
            project=project,
            summary=self._fill(rng, rng.choice(SUMMARIES), project),
            description=[] if rng.random() < 0.1 else description,
            status=rng.choice(STATUSES),
            issue_type=rng.choices(ISSUE_TYPES, weights=(4, 4, 3, 1))[0],
            priority=rng.choices(PRIORITIES, weights=(1, 3, 6, 3, 1))[0],
            labels=sorted(rng.sample(LABELS, rng.choice((0, 1, 1, 2, 3)))),
            assignee=None if rng.random() < 0.2 else rng.choice(humans),
            reporter=rng.choice(humans),
            created_ms=created_ms,
            updated_ms=updated_ms,
        )
        for _ in range(rng.choice((0, 0, 1, 2, 3, 4, 6))):
            self._add_comment(rng, issue, rng.randint(created_ms, updated_ms))
        issue.comments.sort(key=lambda c: c.created_ms)
        return issue

    def _add_comment(self, rng: random.Random, issue: JiraIssue, created_ms: int) -> None:
        spans: list[Span] = [("text", self._fill(rng, rng.choice(COMMENTS), issue.project))]
        if rng.random() < 0.2:
            spans += [("text", " cc "), ("mention", rng.choice(self._humans()))]
        self._next_comment += 1
        # half the comments come from the people on the issue, the rest from anyone
        people_on_issue = [a for a in (issue.assignee, issue.reporter) if a]
        pool = people_on_issue if rng.random() < 0.5 else self._humans()
        issue.comments.append(
            JiraComment(
                str(self._next_comment),
                rng.choice(pool),
                [("p", spans)],
                created_ms,
                created_ms,
            )
        )

    # ----------------------------------------------------------------- reads
    def searchable(self) -> list[JiraIssue]:
        """Issues of live projects (archived projects' issues are hidden from search)."""
        live = {p.key for p in self.projects}
        with self.lock:
            return [i for i in self.issues.values() if i.project.key in live]

    def updated_between(self, start: float, end: float) -> list[JiraIssue]:
        """Ground truth: searchable issues whose `updated` lies in [start, end) (epoch s)."""
        return [i for i in self.searchable() if start * 1000 <= i.updated_ms < end * 1000]

    def find(self, id_or_key: str) -> JiraIssue | None:
        """The issue with this id, key or former key (None: never existed, or deleted)."""
        with self.lock:
            key = id_or_key.upper()
            return (
                self.by_id.get(id_or_key)
                or self.issues.get(key)
                or self.by_id.get(self.former_keys.get(key, ""))
            )

    def issue_text(self, issue: JiraIssue) -> str:
        return plain_text(issue.description, self.users)

    # ----------------------------------------------------------------- mutations
    def edit_issue(
        self,
        key: str,
        summary: str | None = None,
        description: str | None = None,
        comment: str | None = None,
    ) -> JiraIssue:
        """A person edits an issue now (its `updated` becomes now); returns the issue."""
        with self.lock:
            issue = self.issues[key]
            now_ms = self._touch(issue)
            if summary is not None:
                issue.summary = summary
            if description is not None:
                issue.description = [("p", [("text", description)])]
            if comment is not None:
                self._next_comment += 1
                issue.comments.append(
                    JiraComment(
                        str(self._next_comment),
                        issue.assignee or issue.reporter,
                        [("p", [("text", comment)])],
                        now_ms,
                        now_ms,
                    )
                )
            return issue

    def delete_issue(self, id_or_key: str) -> JiraIssue:
        """A person deletes an issue: it leaves search and reads (Jira keeps no trace);
        returns it as it was."""
        with self.lock:
            issue = self._existing(id_or_key)
            del self.issues[issue.key]
            del self.by_id[issue.id]
            for old in [k for k, i in self.former_keys.items() if i == issue.id]:
                del self.former_keys[old]
            return issue

    def move_issue(self, id_or_key: str, project_key: str) -> JiraIssue:
        """A person moves an issue to another live project: it keeps its id, takes the next
        key there (its old key still finds it) and is updated now; returns it."""
        with self.lock:
            issue = self._existing(id_or_key)
            target = next((p for p in self.projects if p.key == project_key), None)
            if target is None or target is issue.project:
                raise ValueError(f"cannot move {issue.key} to project {project_key!r}")
            number = self._last_number.get(target.key, 0) + 1
            self._last_number[target.key] = number
            del self.issues[issue.key]
            self.former_keys[issue.key] = issue.id
            issue.project, issue.key = target, f"{target.key}-{number}"
            self.issues[issue.key] = issue
            self._touch(issue)
            return issue

    def _existing(self, id_or_key: str) -> JiraIssue:
        issue = self.find(id_or_key)
        if issue is None:
            raise KeyError(f"no issue {id_or_key!r} on the site")
        return issue

    @staticmethod
    def _touch(issue: JiraIssue) -> int:
        """Stamp the issue updated now (later than before, even within a millisecond)."""
        issue.updated_ms = max(int(clock.now_epoch() * 1000), issue.updated_ms + 1)
        return issue.updated_ms


_SITES: weakref.WeakKeyDictionary[Company, JiraSite] = weakref.WeakKeyDictionary()
_SITES_LOCK = threading.Lock()
