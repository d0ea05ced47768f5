"""Which Jira issues one run reads, and how an issue becomes a document.

Partition semantics: a day holds the issues whose `updated` time falls in that UTC day, read
with Jira's own filter, one query per project:

    project = "KEY" AND updated >= "yyyy-MM-dd HH:mm" AND updated < "yyyy-MM-dd HH:mm"
    ORDER BY updated ASC

- JQL dates have minute granularity and are read in the *account's* time zone (GET myself),
  so the UTC bounds are converted to it (a bound in the repeated hour of a clock change is
  widened by that hour; `updated` is then filtered exactly). The upper bound is
  min(window end, now), the run's high-water mark: the query runs to the next whole minute
  and issues updated after the bound are left to the next run.
- today's open day with a mark: the lower bound is the mark minus an overlap (default 2 min,
  option `overlap_minutes`), floored to the minute and never before the day's start, because
  Jira's search index lags a little behind edits; issues seen twice are one document.
- Each project is its own query (option `projects`, else every project the account can see,
  from the paged project search), so one project can neither crowd out nor break another;
  every query is paged by nextPageToken to the end, with no cap.

One document per issue, `doc_id` = `jira:<connection>:<issue id>` (the id survives a move to
another project, the key does not); text = key and summary, the description (ADF flattened)
and the most recent comments (option `recent_comments`, default 5, newest last).

Deletions: Jira's search shows a deleted issue, or one moved out of the connection's
projects, only by its absence, so the daily reconciliation (reconcile.py) lists the ids that
still exist and vector_index deletes the rest.

Limitations: access is `all` for every issue; Jira's per-project permissions (and issue
security levels) are not mapped to readers. An edit lands in the day it happened, so a
re-synced older day no longer holds an issue edited since.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field

from sync_pipelines.documents import ACCESS_ALL, Document
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import MalformedResponseError
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.jira.client import JiraClient, JiraRequestError
from sync_pipelines.sources.options import Minutes, OptionsModel, ProjectKeys

SOURCE = "jira"
SEARCH_FIELDS = (
    "summary",
    "description",
    "status",
    "assignee",
    "reporter",
    "issuetype",
    "priority",
    "labels",
    "project",
    "created",
    "updated",
    "comment",
)
_INLINE = {"text", "mention", "emoji", "hardBreak", "inlineCard", "date", "status"}
_LISTS = {"bulletList", "orderedList", "taskList", "decisionList"}


class JiraOptions(OptionsModel):
    """A site's options (the module docstring says what each does)."""

    projects: ProjectKeys = ()  # empty = every project the account can see
    overlap_minutes: Minutes = 2.0
    recent_comments: int = Field(default=5, ge=0, strict=True)


@dataclass(kw_only=True)
class JiraSyncResult(SyncResult):
    projects_read: int
    issues_fetched: int
    comment_reads: int
    jql_timezone: str
    fetched_from: float


def jql_time(epoch: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")


def fold_shift(epoch: float, tz: ZoneInfo) -> float:
    """Seconds a bound must move outward so that Jira, whichever way it reads an ambiguous
    local time (the repeated hour when clocks go back), still covers `epoch`."""
    local = datetime.fromtimestamp(epoch, tz)
    other = local.replace(fold=1 - local.fold)
    return abs((other.utcoffset() - local.utcoffset()).total_seconds())


def build_jql(project: str, lower: float, upper: float, tz: ZoneInfo) -> str:
    """One project's issues updated in [lower, upper) (epoch seconds on whole minutes), or
    a little more around a clock change; the caller filters exactly."""
    since = jql_time(lower - fold_shift(lower, tz), tz)
    until = jql_time(upper + fold_shift(upper, tz), tz)
    return (
        f'project = "{project}" AND updated >= "{since}" AND updated < "{until}" '
        "ORDER BY updated ASC"
    )


def floor_minute(epoch: float) -> float:
    return float(int(epoch // 60) * 60)


def ceil_minute(epoch: float) -> float:
    return -floor_minute(-epoch)


def adf_text(value: Any) -> str:
    """Plain text of a rich-text field: ADF (API v3) flattened, or a v2 string as is.

    Blocks go on their own lines, list items get "- " (or "1. "), mentions keep their
    "@Name", links their URL; media and rules are dropped.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    lines: list[str] = []
    _adf_lines(value, lines, "")
    return "\n".join(lines).strip()


def _adf_lines(node: Any, out: list[str], indent: str) -> None:
    if not isinstance(node, dict):
        return
    kind, content = node.get("type"), node.get("content") or []
    if kind in _LISTS:
        for n, item in enumerate(content, 1):
            marker = f"{n}. " if kind == "orderedList" else "- "
            lines: list[str] = []
            if isinstance(item, dict) and item.get("type") in ("taskItem", "decisionItem"):
                lines.append(_inline_text(item))
            else:
                for child in (item.get("content") or []) if isinstance(item, dict) else []:
                    _adf_lines(child, lines, "")
            for i, line in enumerate(lines or [""]):
                out.append(indent + (marker if i == 0 else "  ") + line)
    elif content and all(isinstance(c, dict) and c.get("type") in _INLINE for c in content):
        text = _inline_text(node)
        if text.strip():
            out.extend(indent + line for line in text.split("\n"))
    else:
        for child in content:
            _adf_lines(child, out, indent)


def _inline_text(node: dict) -> str:
    parts = []
    for child in node.get("content") or []:
        kind, attrs = child.get("type"), child.get("attrs") or {}
        if kind == "text":
            parts.append(str(child.get("text") or ""))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind in ("mention", "emoji", "status"):
            parts.append(str(attrs.get("text") or attrs.get("shortName") or ""))
        elif kind == "inlineCard":
            parts.append(str(attrs.get("url") or ""))
        elif kind == "date" and str(attrs.get("timestamp", "")).isdigit():
            parts.append(
                datetime.fromtimestamp(int(attrs["timestamp"]) / 1000, UTC).date().isoformat()
            )
    return "".join(parts)


def parse_time(value: Any, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponseError(f"jira {what} has a malformed time {value!r}") from None
    if parsed.tzinfo is None:
        raise MalformedResponseError(f"jira {what} time {value!r} has no offset")
    return parsed.astimezone(UTC)


def _updated(issue: Any) -> float:
    fields = issue.get("fields") if isinstance(issue, dict) else None
    if not isinstance(fields, dict):
        raise MalformedResponseError("jira search returned an issue without fields")
    return parse_time(fields.get("updated"), f"{issue.get('key')} updated").timestamp()


def issue_doc_id(connection_id: str, issue_id: str) -> str:
    """The one place an issue's doc_id is made (the sync and the reconciliation agree)."""
    return Document.make_id(SOURCE, connection_id, issue_id)


def _name(user: Any) -> str:
    return str(user.get("displayName") or "") if isinstance(user, dict) else ""


class JiraSync:
    """One run's reader: the projects of one site, their changed issues, into documents."""

    def __init__(self, client: JiraClient, options: JiraOptions, connection_id: str):
        self.client = client
        self.options = options
        self.connection_id = connection_id
        self.comment_reads = 0

    def run(self, window: SyncWindow, high_water_mark: float | None, now: float | None = None):
        bounds = window.bounds(high_water_mark, self.options.overlap_minutes * 60, now)
        # JQL reads whole minutes: from the minute the lower bound falls in.
        bounds = replace(bounds, lower=floor_minute(bounds.lower))
        tz = self.client.timezone()  # also checks the site and the credentials first
        projects = list(self.options.projects) or self.client.project_keys()
        docs: dict[str, Document] = {}
        fetched = 0
        if not bounds.empty:
            until = ceil_minute(bounds.upper)  # the query's end; `updated` is filtered exactly
            for project in projects:
                for issue in self._project_issues(project, bounds.lower, until, tz):
                    fetched += 1
                    if bounds.lower <= _updated(issue) < bounds.upper:
                        doc = self._document(issue)
                        docs[doc.doc_id] = doc
        return JiraSyncResult(
            documents=list(docs.values()),
            high_water_mark=bounds.upper,
            mode=bounds.mode,
            projects_read=len(projects),
            issues_fetched=fetched,
            comment_reads=self.comment_reads,
            jql_timezone=str(tz),
            fetched_from=bounds.lower,
        )

    def _project_issues(self, project: str, lower: float, upper: float, tz: ZoneInfo):
        fields = [f for f in SEARCH_FIELDS if self.options.recent_comments or f != "comment"]
        try:
            yield from self.client.search(build_jql(project, lower, upper, tz), fields)
        except JiraRequestError as exc:
            if exc.status == 400 and project in self.options.projects:
                raise ValueError(
                    f"jira connection '{self.connection_id}': project '{project}' of option "
                    f"'projects' cannot be searched: {exc}"
                ) from exc
            raise

    def _comments(self, key: str, block: Any) -> list[dict]:
        """The newest `recent_comments` comments, oldest first.

        A search result may carry fewer comments than the issue has (`total`); then the
        newest ones are read from the issue's comment endpoint.
        """
        count = self.options.recent_comments
        if count == 0 or not isinstance(block, dict):
            return []
        comments = [c for c in block.get("comments") or [] if isinstance(c, dict)]
        if int(block.get("total") or 0) > len(comments):
            self.comment_reads += 1
            return self.client.recent_comments(key, count)
        comments.sort(key=lambda c: parse_time(c.get("created"), f"comment of {key}"))
        return comments[-count:]

    def _document(self, issue: dict) -> Document:
        fields = issue.get("fields")
        key, issue_id = issue.get("key"), issue.get("id")
        if not isinstance(fields, dict) or not key or not issue_id:
            raise MalformedResponseError("jira search returned an issue without id, key or fields")
        key, issue_id = str(key), str(issue_id)
        summary = str(fields.get("summary") or "").strip()
        updated = parse_time(fields.get("updated"), f"{key} updated")
        created = parse_time(fields.get("created") or fields.get("updated"), f"{key} created")
        parts = [f"{key}: {summary}"]
        description = adf_text(fields.get("description"))
        if description:
            parts.append(description)
        comments = self._comments(key, fields.get("comment"))
        if comments:
            lines = ["Recent comments:"]
            for c in comments:
                when = parse_time(c.get("created"), f"comment of {key}").strftime("%Y-%m-%d")
                author = _name(c.get("author")) or "unknown"
                lines.append(f"- {author} ({when}): {adf_text(c.get('body'))}")
            parts.append("\n".join(lines))
        project = fields.get("project") if isinstance(fields.get("project"), dict) else {}
        reporter = _name(fields.get("reporter"))
        labels = fields.get("labels") or []
        metadata = {
            "issue_key": key,
            "issue_id": issue_id,
            "project_key": str(project.get("key") or key.rpartition("-")[0]),
            "status": str((fields.get("status") or {}).get("name") or ""),
            "assignee": _name(fields.get("assignee")),
            "reporter": reporter,
            "issue_type": str((fields.get("issuetype") or {}).get("name") or ""),
            "priority": str((fields.get("priority") or {}).get("name") or ""),
            "labels": [str(label) for label in labels] if isinstance(labels, list) else [],
            "timestamp_epoch": updated.timestamp(),
            "url": f"{self.client.site_url}/browse/{key}",
        }
        return Document(
            doc_id=issue_doc_id(self.connection_id, issue_id),
            source=SOURCE,
            connection=self.connection_id,
            title=f"{key}: {summary}",
            text="\n\n".join(parts),
            url=metadata["url"],
            author=reporter or "unknown",
            created_at=created.isoformat(),
            updated_at=updated.isoformat(),
            timestamp_epoch=updated.timestamp(),
            access=(ACCESS_ALL,),
            metadata=metadata,
        )
