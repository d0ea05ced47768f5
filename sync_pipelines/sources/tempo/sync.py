"""Which Tempo worklogs one run reads, how each finds its Jira issue, and its document.

Partition semantics: a day holds the worklogs whose `updatedAt` falls in that UTC day.
Tempo's `updatedFrom` has no upper counterpart, so a run asks for every worklog updated since
the window start (today's open day with a mark: since the mark minus an overlap, default
2 min, option `overlap_minutes`) and keeps, client-side, those updated before
min(window end, now), which is the run's high-water mark. A backfill of an old day therefore
reads every worklog updated since that day and discards the later ones: correct, but its
cost grows with the distance to today.

Issue: always Tempo's `issue.id`, resolved to its key through the Jira connection (option
`jira_connection`, default: the Jira connection with this connection's id), in batches and
cached for the run. The description is free text: the keys written in it are mentions of
other issues (or of its own), never the worklog's issue; they are kept as the
`mentioned_issue_keys` metadata (keys of active projects only, so "UTF-8" never counts).
Active projects: option `active_projects`, else every project the Jira account can see.
Worklogs on other projects are skipped and counted. So are worklogs whose issue Jira cannot
resolve (deleted, or not visible to the Jira account): without the key there is no project
to check and no page to link, and a worklog on an issue the Jira account may not see must
not be indexed for everyone; a key from the description is never used instead.

Author names come from Jira's bulk user endpoint (cached), falling back to the account id
for accounts Jira no longer knows. Names are an enrichment: if the lookup itself fails (any
error but rejected credentials, e.g. a Jira that answers 404 to user/bulk) every author
keeps its account id, one warning is logged and `author_lookup_failures` counts the
accounts concerned; the run succeeds.

One document per worklog, `doc_id` = `tempo:<connection>:<tempoWorklogId>`, text such as
"4.5 h on SUBS-123 by Ana Ruiz on 2026-11-20: <description>"; title, text, url and metadata
name the issue of `issue.id`. Access is `all`: Tempo's own permissions (and Jira's
per-project ones) are not mapped.

Deletions: Tempo shows them only by absence, and a sync reads only what was updated, so it
never sees one; the daily reconciliation (reconcile.py) lists the ids that still exist and
vector_index deletes the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import get_dagster_logger
from pydantic import Field

from sync_pipelines.documents import ACCESS_ALL, Document
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import MalformedResponseError, SourceAuthError, SourceError
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.jira.client import JiraClient
from sync_pipelines.sources.options import Minutes, OptionsModel, ProjectKeys
from sync_pipelines.sources.tempo.client import TempoClient

SOURCE = "tempo"
ISSUE_KEY = re.compile(r"\b[A-Z][A-Z0-9_]+-\d+\b")
log = get_dagster_logger(__name__)


class TempoOptions(OptionsModel):
    """A Tempo connection's options (the module docstring says what each does)."""

    jira_connection: str | None = Field(default=None, min_length=1)  # None: the same id
    active_projects: ProjectKeys = ()  # empty: the projects the Jira account can see
    overlap_minutes: Minutes = 2.0


@dataclass(kw_only=True)
class TempoSyncResult(SyncResult):
    worklogs_fetched: int
    worklogs_skipped_inactive_project: int
    worklogs_skipped_unresolved: int
    issue_cache_size: int
    user_cache_size: int
    author_lookup_failures: int  # accounts shown as their id because the lookup failed
    fetched_from: float


@dataclass
class _Caches:
    """Per-run lookups through Jira: issue id -> key (None: unknown), account id -> name."""

    issues: dict[str, str | None] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    active: frozenset[str] | None = None


def parse_stamp(value: object, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponseError(f"tempo {what} is not a timestamp: {value!r}") from None
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)


def _account(worklog: dict) -> str:
    author = worklog.get("author")
    return str(author.get("accountId") or "") if isinstance(author, dict) else ""


def keys_in_text(text: str, active: frozenset[str]) -> list[str]:
    """The issue keys a text mentions, in order, once each: those of active projects only
    (so "UTF-8" never counts)."""
    keys = (m for m in ISSUE_KEY.findall(text) if m.rpartition("-")[0] in active)
    return list(dict.fromkeys(keys))


def worklog_text(hours: float, key: str, author: str, day: str, description: str) -> str:
    text = f"{hours:g} h on {key} by {author} on {day}"
    return f"{text}: {description}" if description else text


class TempoSync:
    """One run's reader: the worklogs of one Tempo account, into documents."""

    def __init__(
        self, tempo: TempoClient, jira: JiraClient, options: TempoOptions, connection_id: str
    ):
        self.tempo = tempo
        self.jira = jira
        self.options = options
        self.connection_id = connection_id
        self.caches = _Caches()

    def run(self, window: SyncWindow, high_water_mark: float | None, now: float | None = None):
        bounds = window.bounds(high_water_mark, self.options.overlap_minutes * 60, now)
        lower, upper = bounds.lower, bounds.upper
        kept, fetched = [], 0
        for worklog in self.tempo.worklogs(updated_from=lower):
            fetched += 1
            updated = parse_stamp(worklog.get("updatedAt"), "updatedAt").timestamp()
            if int(lower) <= updated < upper:  # updatedFrom is inclusive, to the second
                kept.append((worklog, updated))
        keys = self._issue_keys([w for w, _ in kept])
        inactive = unresolved = 0
        wanted = []
        for (worklog, updated), key in zip(kept, keys):
            if key is None:
                unresolved += 1
            elif key.rpartition("-")[0] not in self._active():
                inactive += 1
            else:
                wanted.append((worklog, updated, key))
        lookup_failures = self._authors([w for w, _, _ in wanted])
        docs: dict[str, Document] = {}
        for worklog, updated, key in wanted:
            doc = self._document(worklog, key, updated)
            docs[doc.doc_id] = doc
        return TempoSyncResult(
            documents=list(docs.values()),
            high_water_mark=upper,
            mode=bounds.mode,
            worklogs_fetched=fetched,
            worklogs_skipped_inactive_project=inactive,
            worklogs_skipped_unresolved=unresolved,
            issue_cache_size=len(self.caches.issues),
            user_cache_size=len(self.caches.users),
            author_lookup_failures=lookup_failures,
            fetched_from=lower,
        )

    # -- lookups through Jira ----------------------------------------------------------------

    def _active(self) -> frozenset[str]:
        if self.caches.active is None:
            self.caches.active = frozenset(self.options.active_projects or self.jira.project_keys())
        return self.caches.active

    def _issue_keys(self, worklogs: list[dict]) -> list[str | None]:
        """Each worklog's issue key, from its `issue.id` only (None: Jira cannot resolve it)."""
        ids = [self._issue_id(w) for w in worklogs]
        missing = set(ids) - {None, *self.caches.issues}
        if missing:
            self.caches.issues.update(self.jira.issue_keys(missing))
        return [self.caches.issues.get(i) if i else None for i in ids]

    @staticmethod
    def _issue_id(worklog: dict) -> str | None:
        issue = worklog.get("issue")
        issue_id = issue.get("id") if isinstance(issue, dict) else None
        return str(issue_id) if issue_id not in (None, "") else None

    def _authors(self, worklogs: list[dict]) -> int:
        """Fill the user cache for these worklogs' authors, in bulk; unknown ones keep the id.

        Returns how many accounts keep their id because the lookup failed (see the module
        docstring); rejected credentials still fail the run.
        """
        wanted = {_account(w) for w in worklogs} - set(self.caches.users) - {""}
        if not wanted:
            return 0
        try:
            names = self.jira.user_names(wanted)
        except SourceAuthError:
            raise
        except SourceError as exc:
            log.warning(
                f"tempo connection '{self.connection_id}': author names unavailable, "
                f"{len(wanted)} authors shown as their account id: {exc}"
            )
            self.caches.users.update({a: a for a in wanted})
            return len(wanted)
        self.caches.users.update({a: names.get(a, a) for a in wanted})
        return 0

    # -- documents ---------------------------------------------------------------------------

    def _document(self, worklog: dict, key: str, updated: float) -> Document:
        worklog_id = worklog.get("tempoWorklogId")
        if worklog_id is None:
            raise MalformedResponseError("tempo worklog without a tempoWorklogId")
        account = _account(worklog)
        author = self.caches.users.get(account, account) or "unknown"
        seconds = int(worklog.get("timeSpentSeconds") or 0)
        hours = round(seconds / 3600, 2)
        day = str(worklog.get("startDate") or "")
        description = str(worklog.get("description") or "").strip()
        created = parse_stamp(worklog.get("createdAt") or worklog.get("updatedAt"), "createdAt")
        url = f"{self.jira.site_url}/browse/{key}"
        return Document(
            doc_id=Document.make_id(SOURCE, self.connection_id, str(worklog_id)),
            source=SOURCE,
            connection=self.connection_id,
            title=f"Worklog {key} · {author} · {day}",
            text=worklog_text(hours, key, author, day, description),
            url=url,
            author=author,
            created_at=created.isoformat(),
            updated_at=datetime.fromtimestamp(updated, UTC).isoformat(),
            timestamp_epoch=updated,
            access=(ACCESS_ALL,),
            metadata={
                "worklog_id": int(worklog_id),
                "issue_key": key,
                "issue_id": self._issue_id(worklog) or "",
                "mentioned_issue_keys": keys_in_text(description, self._active()),
                "project_key": key.rpartition("-")[0],
                "author": author,
                "author_account_id": account,
                "hours": hours,
                "billable_hours": round(int(worklog.get("billableSeconds") or 0) / 3600, 2),
                "start_date": day,
                "timestamp_epoch": updated,
                "url": url,
            },
        )
