"""The sandbox company's Notion workspace: users, databases, pages and their block trees.

Derived deterministically from the `Company` (seed, people, projects, issue keys, anchor, days),
so the people, projects and issue keys of Slack and Jira also fill the specs, meeting notes,
runbooks and RFCs here. `NotionWorkspace.of(company)` returns the one workspace of a company
object: the emulator serves it and tests read their ground truth from the same, mutable store.
Nothing is stamped later than now - 60 s; the page count scales with `company.message_count`.
Like the company, it is reproducible from (seed, messages, days, anchor) when the span lies in
the past; with today's anchor the span ends at generation time.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
import uuid
import weakref
from dataclasses import dataclass, field

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Project
from sync_pipelines_sandbox.text import CUSTOMERS, SERVICES, Chatter

_DAY = 86_400
JIRA_BROWSE_URL = "https://acme-sandbox.atlassian.net/browse/"

# Blocks whose rich text is the page's text (what a reader of the page sees as prose).
TEXT_BLOCK_TYPES = (
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "to_do",
    "quote",
    "callout",
    "code",
    "toggle",
)

FEATURES = (
    "usage-based billing",
    "single sign-on",
    "audit log",
    "offline mode",
    "webhooks v2",
    "data retention",
    "search relevance",
    "rate limiting",
    "multi-region failover",
    "granular permissions",
)
STATUSES = ("Draft", "In review", "Approved", "In progress", "Shipped")
# kind -> weight among generated pages
_KINDS = (("spec", 0.3), ("meeting", 0.35), ("runbook", 0.15), ("rfc", 0.2))
_LONG_SHARE = 0.07  # pages with a long appendix (several block pages of children)

# A span of rich text: ("text", content) | ("user", notion user id) | ("issue", issue key)
Span = tuple[str, str]


@dataclass(frozen=True, slots=True)
class NotionUser:
    id: str
    name: str
    email: str  # "" for the integration's bot user
    is_bot: bool = False


@dataclass(slots=True)
class Block:
    id: str
    type: str
    page_id: str  # the page the block belongs to (its tree's root)
    parent_id: str  # a page id or a block id
    spans: list[Span]
    created: int  # epoch seconds
    edited: int
    author: str  # notion user id
    children: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # checked, language, caption, url, title, emoji


@dataclass(slots=True)
class Database:
    id: str
    data_source_id: str
    title: str
    title_property: str  # the name of its title column
    created: int
    edited: int
    author: str


@dataclass(slots=True)
class NotionPage:
    id: str
    title: str
    kind: str  # spec | meeting | runbook | rfc | wiki | directory
    parent_type: str  # database | page | workspace
    parent_id: str | None
    created: int
    edited: int
    created_by: str
    edited_by: str
    blocks: list[str] = field(default_factory=list)
    properties: dict = field(default_factory=dict)  # name -> ("select"|"people"|"date", value)
    shared: bool = True  # False once the integration lost access (deleted or unshared)
    in_trash: bool = False  # moved to the trash: out of search, still readable with the flag


def minute_floor(epoch: float) -> int:
    """Notion reports created/last-edited times rounded down to the minute."""
    return int(epoch) // 60 * 60


_WORKSPACES: weakref.WeakKeyDictionary[Company, NotionWorkspace] = weakref.WeakKeyDictionary()
_WORKSPACES_LOCK = threading.Lock()


class NotionWorkspace:
    """Everything the Notion emulator serves; hold `lock` while reading or mutating it."""

    def __init__(self, company: Company):
        self.company = company
        self.lock = threading.RLock()
        self.users: dict[str, NotionUser] = {}
        self.databases: dict[str, Database] = {}
        self.pages: dict[str, NotionPage] = {}
        self.blocks: dict[str, Block] = {}
        self._by_slack_user: dict[str, str] = {}

    @classmethod
    def of(cls, company: Company) -> NotionWorkspace:
        """The workspace of this company object (generated on first use, then shared)."""
        with _WORKSPACES_LOCK:
            workspace = _WORKSPACES.get(company)
            if workspace is None:
                workspace = _WORKSPACES[company] = cls.generate(company)
            return workspace

    # ----------------------------------------------------------------- generation
    @classmethod
    def generate(cls, company: Company) -> NotionWorkspace:
        rng = random.Random(f"notion:{company.seed}")
        ws = cls(company)
        start, end = company.span()
        ws._make_users(rng)
        _Writer(ws, rng, start, end).write(max(24, company.message_count // 12))
        return ws

    def _make_users(self, rng: random.Random) -> None:
        for person in self.company.people:
            if person.is_bot:
                continue
            user = NotionUser(_uuid(rng), person.name, person.email)
            self.users[user.id] = user
            self._by_slack_user[person.user_id] = user.id
        bot = NotionUser(_uuid(rng), "Acme Sync", "", is_bot=True)  # the integration itself
        self.users[bot.id] = bot

    def user_for_slack(self, slack_user_id: str) -> str:
        return self._by_slack_user[slack_user_id]

    # ----------------------------------------------------------------- reads
    def shared_pages(self, in_trash: bool = False) -> list[NotionPage]:
        """The pages search can return: the live ones, or (`in_trash`) the trashed ones."""
        with self.lock:
            return [p for p in self.pages.values() if p.shared and p.in_trash == in_trash]

    def children(self, block_or_page_id: str) -> list[Block] | None:
        """Child blocks of a shared page or block, or None if the integration cannot see it."""
        with self.lock:
            page = self.pages.get(block_or_page_id)
            if page is not None:
                return [self.blocks[b] for b in page.blocks] if page.shared else None
            block = self.blocks.get(block_or_page_id)
            if block is None or not self.pages[block.page_id].shared:
                return None
            return [self.blocks[b] for b in block.children]

    def has_children(self, block: Block) -> bool:
        if block.type == "child_page":
            return bool(self.pages[block.id].blocks)
        return bool(block.children)

    def plain_text(self, spans: list[Span]) -> str:
        """The text Notion reports as `plain_text` (user mentions read "@Name")."""
        return "".join("@" + self.users[v].name if k == "user" else v for k, v in spans)

    def pages_edited_between(self, start: float, end: float) -> list[NotionPage]:
        """Ground truth: live shared pages whose reported last_edited_time is in [start, end)."""
        with self.lock:
            return [p for p in self.shared_pages() if start <= minute_floor(p.edited) < end]

    def page_lines(self, page_id: str) -> list[str]:
        """Ground truth: plain text of every text block of a page, nested ones included, in
        reading order (sub-pages excluded: they are pages of their own)."""
        with self.lock:
            lines: list[str] = []

            def walk(ids: list[str]) -> None:
                for block_id in ids:
                    block = self.blocks[block_id]
                    if block.type in TEXT_BLOCK_TYPES:
                        text = self.plain_text(block.spans)
                        if text.strip():
                            lines.append(text)
                    walk(block.children)

            walk(self.pages[page_id].blocks)
            return lines

    # ----------------------------------------------------------------- mutations
    def edit_page(self, page_id: str, text: str, at: float | None = None) -> int:
        """Someone rewrites the page's first paragraph now (or at `at`); returns the edit time."""
        with self.lock:
            page = self.pages[page_id]
            when = int(clock.now_epoch() if at is None else at)
            target = next(
                (self.blocks[b] for b in page.blocks if self.blocks[b].type == "paragraph"), None
            )
            if target is None:
                target = self._add_block(page, page.id, "paragraph", [], when, page.edited_by)
                page.blocks.insert(0, target.id)
            target.spans = [("text", text)]
            target.edited = max(target.edited, when)
            page.edited = max(page.edited, when)
            return page.edited

    def unshare_page(self, page_id: str) -> None:
        """The page is deleted or no longer shared with the integration: it and its blocks 404."""
        with self.lock:
            self.pages[page_id].shared = False

    def trash_page(self, page_id: str, at: float | None = None) -> int:
        """Someone moves the page to the trash now (or at `at`): search leaves it out, reads
        still answer it with `in_trash` set; the move is its last edit (an `at` before that
        edit leaves the time as it was). Returns its last_edited_time."""
        with self.lock:
            page = self.pages[page_id]
            page.in_trash = True
            page.edited = max(page.edited, int(clock.now_epoch() if at is None else at))
            return page.edited

    def _add_block(
        self,
        page: NotionPage,
        parent_id: str,
        kind: str,
        spans: list[Span],
        when: int,
        author: str,
        block_id: str | None = None,
    ) -> Block:
        block = Block(
            block_id or str(uuid.uuid4()), kind, page.id, parent_id, spans, when, when, author
        )
        self.blocks[block.id] = block
        return block


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


_TOKENS = re.compile(r"<@([UW][A-Z0-9]+)>|\b([A-Z]+-\d+)\b")


class _Writer:
    """Writes the workspace's pages with one RNG, in a fixed order (hence reproducible)."""

    def __init__(self, ws: NotionWorkspace, rng: random.Random, start: int, end: int):
        self.ws = ws
        self.rng = rng
        self.start, self.end = start, end
        company = ws.company
        self.people = [p for p in company.people if not p.is_bot]
        self.members = [(p.user_id, p.name.split()[0]) for p in self.people]
        self.chatter = Chatter(rng, company.issue_keys, [p.name for p in company.projects])
        self.issue_keys = set(company.issue_keys)
        self.keys_by_project = {
            p.key: [k for k in company.issue_keys if k.startswith(p.key + "-")]
            for p in company.projects
        }
        self.page: NotionPage | None = None

    # -- pieces ------------------------------------------------------------------------------
    def _user(self) -> str:
        return self.ws.user_for_slack(self.rng.choice(self.people).user_id)

    def spans(self, text: str) -> list[Span]:
        """Chatter text -> rich-text spans: Slack-style mentions become user mentions, issue
        keys become links to Jira."""
        out: list[Span] = []
        at = 0
        for match in _TOKENS.finditer(text):
            slack_user, key = match.groups()
            if key and key not in self.issue_keys:
                continue
            if match.start() > at:
                out.append(("text", text[at : match.start()]))
            out.append(
                ("user", self.ws.user_for_slack(slack_user)) if slack_user else ("issue", key)
            )
            at = match.end()
        if at < len(text):
            out.append(("text", text[at:]))
        return out

    def sentence(self) -> list[Span]:
        return self.spans(self.chatter.message(self.members))

    def block(self, parent: str, kind: str, spans: list[Span] | None = None, **extra) -> Block:
        page = self.page
        block = self.ws._add_block(
            page, parent, kind, spans or [], page.created, page.created_by, _uuid(self.rng)
        )
        block.edited = page.edited
        block.extra.update(extra)
        if parent == page.id:
            page.blocks.append(block.id)
        else:
            self.ws.blocks[parent].children.append(block.id)
        return block

    def text(self, parent: str, kind: str, text: str | list[Span] | None = None, **extra) -> Block:
        spans = self.spans(text) if isinstance(text, str) else (text or self.sentence())
        return self.block(parent, kind, spans, **extra)

    # -- pages -------------------------------------------------------------------------------
    def new_page(
        self, title: str, kind: str, parent_type: str, parent_id: str | None
    ) -> NotionPage:
        rng = self.rng
        edited = self.start + int(rng.random() * (self.end - self.start))
        created = max(edited - int(rng.expovariate(1 / (6 * _DAY))), edited - 200 * _DAY)
        author = self._user()
        page = NotionPage(
            _uuid(rng),
            title,
            kind,
            parent_type,
            parent_id,
            created,
            edited,
            author,
            self._user() if rng.random() < 0.6 else author,
        )
        self.ws.pages[page.id] = page
        self.page = page
        return page

    def database(self, title: str, title_property: str) -> Database:
        created = self.start - self.rng.randint(60, 400) * _DAY
        db = Database(
            _uuid(self.rng), _uuid(self.rng), title, title_property, created, created, self._user()
        )
        self.ws.databases[db.id] = db
        return db

    def write(self, count: int) -> None:
        rng = self.rng
        projects_db = self.database("Projects", "Name")
        meetings_db = self.database("Meeting notes", "Meeting")
        rfcs_db = self.database("RFCs", "RFC")
        wiki = self.new_page("Engineering wiki", "wiki", "workspace", None)
        self.text(wiki.id, "heading_1", "Engineering wiki")
        self.text(wiki.id, "paragraph", "How we build, ship and operate Acme. Runbooks below.")
        self.directory()
        kinds = [k for k, _ in _KINDS]
        weights = [w for _, w in _KINDS]
        rfc_number = 100
        for _ in range(count - 2):
            project = rng.choice(self.ws.company.projects)
            kind = rng.choices(kinds, weights)[0]
            if kind == "spec":
                self.spec(project, projects_db)
            elif kind == "meeting":
                self.meeting(project, meetings_db)
            elif kind == "runbook":
                self.runbook(wiki)
            else:
                rfc_number += rng.randint(1, 3)
                self.rfc(project, rfcs_db, rfc_number)
            if rng.random() < _LONG_SHARE:
                self.appendix()

    def directory(self) -> None:
        page = self.new_page("Team directory", "directory", "workspace", None)
        self.text(page.id, "heading_1", "Who is who")
        self.text(
            page.id,
            "callout",
            "Keep your entry current; on-call swaps go in #engineering.",
            emoji="📇",
        )
        for person in self.people:
            user = self.ws.user_for_slack(person.user_id)
            project = self.rng.choice(self.ws.company.projects)
            self.text(
                page.id,
                "bulleted_list_item",
                [("user", user), ("text", f" — {project.name} ({project.key}), {person.email}")],
            )

    def _keys(self, project: Project, n: int) -> list[str]:
        keys = self.keys_by_project[project.key] or sorted(self.issue_keys)
        return self.rng.sample(keys, min(n, len(keys)))

    def spec(self, project: Project, db: Database) -> None:
        rng = self.rng
        feature = rng.choice(FEATURES)
        page = self.new_page(f"{project.name}: {feature} spec", "spec", "database", db.id)
        epic, *keys = self._keys(project, 4)
        page.properties = {
            "Status": ("select", rng.choice(STATUSES)),
            "Owner": ("people", [page.created_by]),
            "Project": ("select", project.key),
        }
        self.text(
            page.id,
            "callout",
            [
                ("text", "Owner: "),
                ("user", page.created_by),
                ("text", " · Epic: "),
                ("issue", epic),
            ],
            emoji="💡",
        )
        self.text(page.id, "heading_1", "Overview")
        for _ in range(rng.randint(1, 3)):
            self.text(page.id, "paragraph")
        self.text(page.id, "heading_2", "Goals")
        for i in range(3):
            item = self.text(page.id, "bulleted_list_item")
            if i == 0:
                for _ in range(2):
                    self.text(item.id, "bulleted_list_item")
        self.text(page.id, "heading_2", "Milestones")
        for key in keys:
            self.text(page.id, "numbered_list_item", f"Ship {key} for {feature}")
        self.block(
            page.id,
            "image",
            caption=f"Architecture diagram for {feature}",
            url=f"https://files.acme.test/diagrams/{project.key.lower()}.png",
        )
        self.text(page.id, "heading_2", "Open questions")
        toggle = self.text(page.id, "toggle", f"Details on {feature}")
        for _ in range(2):
            self.text(toggle.id, "paragraph")
        nested = self.text(toggle.id, "bulleted_list_item")
        self.text(nested.id, "bulleted_list_item")
        for _ in range(rng.randint(2, 4)):
            self.text(page.id, "to_do", checked=rng.random() < 0.4)
        self.block(page.id, "divider")
        flag = feature.replace(" ", "_")
        config = (
            f"service: {rng.choice(SERVICES)}\nfeature_flag: {flag}\nretries: {rng.randint(2, 6)}"
        )
        self.text(page.id, "code", config, language="yaml")

    def meeting(self, project: Project, db: Database) -> None:
        rng = self.rng
        page = self.new_page(f"{project.name} sync", "meeting", "database", db.id)
        day = dt.datetime.fromtimestamp(page.created, dt.UTC)
        page.title = f"{project.name} sync — {day:%Y-%m-%d}"
        attendees = list(dict.fromkeys(self._user() for _ in range(rng.randint(3, 6))))
        page.properties = {
            "Date": ("date", f"{day:%Y-%m-%d}"),
            "Attendees": ("people", attendees),
        }
        spans: list[Span] = [("text", "Attendees: ")]
        for n, user in enumerate(attendees):
            spans += ([("text", ", ")] if n else []) + [("user", user)]
        self.text(page.id, "paragraph", spans)
        self.text(page.id, "heading_2", "Agenda")
        for _ in range(3):
            self.text(page.id, "bulleted_list_item")
        self.text(page.id, "heading_2", "Notes")
        for _ in range(rng.randint(2, 4)):
            self.text(page.id, "paragraph")
        key = self._keys(project, 1)[0]
        toggle = self.text(page.id, "toggle", f"Discussion: {key}")
        for _ in range(2):
            self.text(toggle.id, "paragraph")
        self.text(page.id, "quote", f"{rng.choice(CUSTOMERS)} is waiting on {key}.")
        self.text(page.id, "heading_2", "Action items")
        for _ in range(rng.randint(2, 4)):
            owner = self._user()
            follow = self._keys(project, 1)[0]
            self.text(
                page.id,
                "to_do",
                [("user", owner), ("text", " to follow up on "), ("issue", follow)],
                checked=rng.random() < 0.3,
            )

    def runbook(self, wiki: NotionPage) -> None:
        rng = self.rng
        service = rng.choice(SERVICES)
        page = self.new_page(f"Runbook: {service}", "runbook", "page", wiki.id)
        # Notion lists a sub-page in its parent as a child_page block with the page's own id.
        self.ws.blocks[page.id] = Block(
            page.id,
            "child_page",
            wiki.id,
            wiki.id,
            [],
            page.created,
            page.created,
            page.created_by,
            extra={"title": page.title},
        )
        wiki.blocks.append(page.id)
        self.text(page.id, "quote", f"If {service} pages you, start here.")
        self.text(page.id, "heading_2", "Symptoms")
        for _ in range(2):
            self.text(page.id, "bulleted_list_item")
        self.text(page.id, "heading_2", "Steps")
        for n in range(4):
            step = self.text(page.id, "numbered_list_item")
            if n == 1:
                self.text(
                    step.id,
                    "code",
                    f"kubectl -n prod rollout restart deploy/{service}",
                    language="shell",
                )
        self.text(page.id, "heading_3", "Escalation")
        toggle = self.text(page.id, "toggle", "Who to call")
        self.text(toggle.id, "paragraph", [("text", "Escalate to "), ("user", self._user())])
        contacts = self.text(toggle.id, "bulleted_list_item", "Secondary on-call")
        self.text(contacts.id, "paragraph", [("user", self._user())])
        self.text(
            page.id, "callout", f"Never restart {service} during a database failover.", emoji="⚠️"
        )
        self.block(
            page.id,
            "image",
            caption=f"{service} dashboard",
            url=f"https://files.acme.test/dashboards/{service}.png",
        )

    def rfc(self, project: Project, db: Database, number: int) -> None:
        rng = self.rng
        topic = rng.choice(
            (
                "event pipeline redesign",
                "API versioning",
                "caching strategy",
                "schema migration plan",
                "retry and backoff policy",
            )
        )
        page = self.new_page(f"RFC-{number}: {project.name} {topic}", "rfc", "database", db.id)
        page.properties = {"Status": ("select", rng.choice(STATUSES))}
        self.text(page.id, "heading_1", "Summary")
        self.text(page.id, "paragraph")
        self.text(page.id, "heading_2", "Motivation")
        for _ in range(2):
            self.text(page.id, "paragraph")
        self.text(page.id, "heading_2", "Design")
        for _ in range(3):
            self.text(page.id, "paragraph")
        self.text(
            page.id,
            "code",
            f'POST /v2/{project.key.lower()}/events\n{{"idempotency_key": "..."}}',
            language="http",
        )
        self.text(page.id, "heading_3", "Alternatives considered")
        for _ in range(3):
            self.text(page.id, "bulleted_list_item")
        self.text(page.id, "heading_2", "Rollout")
        for key in self._keys(project, 3):
            self.text(page.id, "numbered_list_item", f"Behind a flag, tracked in {key}")
        self.block(page.id, "bookmark", url=f"https://docs.acme.test/rfc/{number}")

    def appendix(self) -> None:
        """A long tail of notes: the page then spans several pages of block children."""
        page = self.page
        self.text(page.id, "heading_2", "Appendix: working notes")
        for _ in range(self.rng.randint(120, 260)):
            kind = "bulleted_list_item" if self.rng.random() < 0.5 else "paragraph"
            self.text(page.id, kind)
