"""Jira Cloud REST emulator: the endpoints the `jira` package and the sources call.

Served under `/rest/api/2/` and `/rest/api/3/` (v3 renders rich text as ADF, v2 as wiki
markup), with basic auth (email + API token), Jira's `{"errorMessages": [...], "errors": {}}`
error bodies, `deploymentType: "Cloud"` in serverInfo (the `jira` package gates
`enhanced_search_issues` on it), the enhanced search `search/jql` with `nextPageToken` paging
(no `total`, no `startAt`; the old `/search` answers 410 as on Cloud since 2025), the paged
project search, issues and their comments, users (one by accountId, or in bulk) and myself.
JQL is the subset in jql.py. An issue deleted on the site (`JiraState.delete_issue`) is gone
from search and answers 404; a moved one (`move_issue`) has a new key, and its old key still
reads it.

Search pages are keyset cursors over the query's sort order, so an issue edited while a client
pages moves to the end instead of shifting the pages. A search result carries at most
SEARCH_COMMENTS comments with the issue's real `total` (the comment field is itself paged);
`GET issue/{id}/comment` serves the rest.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, Project
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.jira.data import (
    ACCOUNT_TIMEZONE,
    SANDBOX_JIRA_EMAIL,
    SANDBOX_JIRA_TOKEN,
    Block,
    JiraComment,
    JiraIssue,
    JiraSite,
    JiraUser,
)
from sync_pipelines_sandbox.jira.jql import JiraError, matches, parse_jql, sort_key

SEARCH_DEFAULT = 50
SEARCH_MAX = 100  # when fields beyond id/key are requested
SEARCH_MAX_IDS_ONLY = 5000
SEARCH_COMMENTS = 20
PROJECT_PAGE_DEFAULT, PROJECT_PAGE_MAX = 50, 100
COMMENT_PAGE_MAX = 5000
BULK_USERS_MAX = 200
ISSUE_FIELDS = (
    "summary",
    "description",
    "status",
    "assignee",
    "reporter",
    "creator",
    "issuetype",
    "priority",
    "labels",
    "project",
    "created",
    "updated",
    "comment",
)
FIELD_DEFINITIONS = (  # id, name, clause names, schema type
    ("summary", "Summary", ["summary"], "string"),
    ("description", "Description", ["description"], "string"),
    ("status", "Status", ["status"], "status"),
    ("assignee", "Assignee", ["assignee"], "user"),
    ("reporter", "Reporter", ["reporter"], "user"),
    ("creator", "Creator", ["creator"], "user"),
    ("issuetype", "Issue Type", ["issuetype", "type"], "issuetype"),
    ("priority", "Priority", ["priority"], "priority"),
    ("labels", "Labels", ["labels"], "array"),
    ("project", "Project", ["project"], "project"),
    ("created", "Created", ["created", "createdDate"], "datetime"),
    ("updated", "Updated", ["updated", "updatedDate"], "datetime"),
    ("comment", "Comment", ["comment"], "comments-page"),
    ("customfield_10016", "Story point estimate", ["cf[10016]", "Story point estimate"], "number"),
)


class JiraState:
    """The site served (shared with tests through `JiraSite.of`) plus the accepted credentials."""

    def __init__(
        self,
        company: Company,
        email: str = SANDBOX_JIRA_EMAIL,
        token: str = SANDBOX_JIRA_TOKEN,
        timezone: str = ACCOUNT_TIMEZONE,
    ):
        self.site = JiraSite.of(company)
        self.credentials = {(email, token)}
        self.tz = ZoneInfo(timezone)
        # Routes this site answers 404, as a Jira that does not serve them (e.g. "user/bulk").
        self.unserved: set[str] = set()

    def set_token(self, token: str, email: str = SANDBOX_JIRA_EMAIL) -> None:
        """Make (email, token) the only valid credentials (a rotated or revoked token)."""
        self.credentials = {(email, token)}

    def edit_issue(
        self,
        key: str,
        summary: str | None = None,
        description: str | None = None,
        comment: str | None = None,
    ) -> JiraIssue:
        return self.site.edit_issue(key, summary, description, comment)

    def delete_issue(self, id_or_key: str) -> JiraIssue:
        return self.site.delete_issue(id_or_key)

    def move_issue(self, id_or_key: str, project_key: str) -> JiraIssue:
        return self.site.move_issue(id_or_key, project_key)

    def project_id(self, project: Project) -> str:
        everything = self.site.projects + self.site.archived_projects
        return str(10_000 + everything.index(project))


# ------------------------------------------------------------------ serializers
def _time(ms: int, tz: ZoneInfo) -> str:
    """Jira's timestamp format: 2025-01-02T10:04:59.123+0530."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + moment.strftime("%z")


def _adf(blocks: list[Block], users: Mapping[str, JiraUser]) -> dict | None:
    if not blocks:
        return None
    content = []
    for kind, value in blocks:
        if kind == "p":
            content.append({"type": "paragraph", "content": [_adf_span(s, users) for s in value]})
        else:
            content.append(
                {
                    "type": "bulletList",
                    "content": [
                        {
                            "type": "listItem",
                            "content": [
                                {"type": "paragraph", "content": [{"type": "text", "text": item}]}
                            ],
                        }
                        for item in value
                    ],
                }
            )
    return {"type": "doc", "version": 1, "content": content}


def _adf_span(span: tuple[str, str], users: Mapping[str, JiraUser]) -> dict:
    kind, value = span
    if kind == "mention":
        name = users[value].display_name
        return {"type": "mention", "attrs": {"id": value, "text": f"@{name}", "accessLevel": ""}}
    return {"type": "text", "text": value}


def _wiki(blocks: list[Block]) -> str | None:
    if not blocks:
        return None
    parts = []
    for kind, value in blocks:
        if kind == "p":
            parts.append("".join(f"[~accountid:{v}]" if k == "mention" else v for k, v in value))
        else:
            parts.append("\n".join(f"* {item}" for item in value))
    return "\n\n".join(parts)


class Renderer:
    """JSON of one API version (2 or 3) for one request's base URL."""

    def __init__(self, state: JiraState, version: str, base: str):
        self.state, self.site, self.version = state, state.site, version
        self.api = f"{base.rstrip('/')}/rest/api/{version}"

    def rich(self, blocks: list[Block]) -> Any:
        return _adf(blocks, self.site.users) if self.version == "3" else _wiki(blocks)

    def user(self, account_id: str | None) -> dict | None:
        if account_id is None:
            return None
        user = self.site.users[account_id]
        avatar = f"https://avatar-management.example/{user.account_id[-8:]}"
        return {
            "self": f"{self.api}/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "emailAddress": user.email,
            "avatarUrls": {size: avatar for size in ("48x48", "24x24", "16x16", "32x32")},
            "displayName": user.display_name,
            "active": user.active,
            "timeZone": "Europe/Paris",
            "accountType": "atlassian",
        }

    def project(self, project: Project) -> dict:
        pid = self.state.project_id(project)
        out = {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "self": f"{self.api}/project/{pid}",
            "id": pid,
            "key": project.key,
            "name": project.name,
            "avatarUrls": {"48x48": f"{self.api}/universal_avatar/view/type/project/{pid}"},
            "projectTypeKey": "software",
            "simplified": False,
            "style": "classic",
            "isPrivate": False,
            "properties": {},
        }
        if project in self.site.archived_projects:
            out.update(archived=True, archivedDate="2024-06-30T12:00:00.000+0000")
        return out

    def comment(self, issue: JiraIssue, comment: JiraComment) -> dict:
        tz = self.state.tz
        return {
            "self": f"{self.api}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": self.user(comment.author),
            "body": self.rich(comment.body),
            "updateAuthor": self.user(comment.author),
            "created": _time(comment.created_ms, tz),
            "updated": _time(comment.updated_ms, tz),
            "jsdPublic": True,
        }

    def issue(self, issue: JiraIssue, fields: set[str], comment_limit: int | None) -> dict:
        tz = self.state.tz
        status_name, status_id, category_key, category_name = issue.status
        comments = issue.comments[:comment_limit] if comment_limit else issue.comments
        values = {
            "summary": lambda: issue.summary,
            "description": lambda: self.rich(issue.description),
            "status": lambda: {
                "self": f"{self.api}/status/{status_id}",
                "description": "",
                "name": status_name,
                "id": status_id,
                "statusCategory": {
                    "id": {"new": 2, "indeterminate": 4, "done": 3}[category_key],
                    "key": category_key,
                    "name": category_name,
                },
            },
            "assignee": lambda: self.user(issue.assignee),
            "reporter": lambda: self.user(issue.reporter),
            "creator": lambda: self.user(issue.reporter),
            "issuetype": lambda: {
                "self": f"{self.api}/issuetype/{issue.issue_type[1]}",
                "id": issue.issue_type[1],
                "name": issue.issue_type[0],
                "subtask": False,
                "hierarchyLevel": 0,
                "description": "",
            },
            "priority": lambda: {
                "self": f"{self.api}/priority/{issue.priority[1]}",
                "name": issue.priority[0],
                "id": issue.priority[1],
            },
            "labels": lambda: list(issue.labels),
            "project": lambda: self.project(issue.project),
            "created": lambda: _time(issue.created_ms, tz),
            "updated": lambda: _time(issue.updated_ms, tz),
            "comment": lambda: {
                "comments": [self.comment(issue, c) for c in comments],
                "self": f"{self.api}/issue/{issue.id}/comment",
                "maxResults": len(comments),
                "total": len(issue.comments),
                "startAt": 0,
            },
            "customfield_10016": lambda: None,
        }
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog",
            "id": issue.id,
            "self": f"{self.api}/issue/{issue.id}",
            "key": issue.key,
            "fields": {name: make() for name, make in values.items() if name in fields},
        }


def _requested_fields(raw: list[str], default: set[str]) -> set[str]:
    names = [n.strip() for value in raw for n in str(value).split(",") if n.strip()]
    if not names:
        return set(default)
    everything = set(ISSUE_FIELDS) | {"customfield_10016"}
    wanted: set[str] = set()
    for name in names:
        if name in ("*all", "*navigable"):
            wanted |= everything
        elif not name.startswith("-"):
            wanted.add(name)
    return (wanted & everything) - {n[1:] for n in names if n.startswith("-")}


def _int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise JiraError(400, f"The '{name}' parameter must be an integer.") from None


# ------------------------------------------------------------------ endpoints
def server_info(state: JiraState, r: Renderer, params: dict) -> dict:
    return {
        "baseUrl": r.api.split("/rest/")[0],
        "displayUrl": r.api.split("/rest/")[0],
        "version": "1001.0.0-SNAPSHOT",
        "versionNumbers": [1001, 0, 0],
        "deploymentType": "Cloud",
        "buildNumber": 100280,
        "buildDate": "2025-11-01T00:00:00.000+0000",
        "serverTime": _time(int(clock.now_epoch() * 1000), state.tz),
        "scmInfo": "0d2a5b3f8e1c",
        "serverTitle": "Acme Sandbox Jira",
        "defaultLocale": {"locale": "en_US"},
        "serverTimeZone": "Etc/UTC",
    }


def fields_list(state: JiraState, r: Renderer, params: dict) -> list:
    return [
        {
            "id": fid,
            "key": fid,
            "name": name,
            "custom": fid.startswith("customfield_"),
            "orderable": True,
            "navigable": True,
            "searchable": True,
            "clauseNames": clauses,
            "schema": {"type": kind, "system": fid},
        }
        for fid, name, clauses, kind in FIELD_DEFINITIONS
    ]


def myself(state: JiraState, r: Renderer, params: dict) -> dict:
    return {**r.user(state.site.account.account_id), "timeZone": str(state.tz), "locale": "en_US"}


def user(state: JiraState, r: Renderer, params: dict) -> dict:
    account = (params.get("accountId") or [None])[0]
    if not account:
        raise JiraError(400, "The query parameter 'accountId' is required.")
    if account not in state.site.users:
        raise JiraError(
            404, "Specified user does not exist or you do not have required permissions"
        )
    return r.user(account)


def users_bulk(state: JiraState, r: Renderer, params: dict) -> dict:
    """GET user/bulk: the known accounts among `accountId` (repeated), paged; unknown omitted."""
    wanted = params.get("accountId") or []
    if not wanted:
        raise JiraError(400, "The query parameter 'accountId' is required.")
    if len(wanted) > BULK_USERS_MAX:
        raise JiraError(400, f"At most {BULK_USERS_MAX} accountId values are accepted.")
    start = max(0, _int_param(params, "startAt", 0))
    size = min(max(1, _int_param(params, "maxResults", 10)), BULK_USERS_MAX)
    known = [a for a in dict.fromkeys(wanted) if a in state.site.users]
    return _page_bean(f"{r.api}/user/bulk", [r.user(a) for a in known], start, size)


def project_search(state: JiraState, r: Renderer, params: dict) -> dict:
    start = max(0, _int_param(params, "startAt", 0))
    size = min(max(1, _int_param(params, "maxResults", PROJECT_PAGE_DEFAULT)), PROJECT_PAGE_MAX)
    statuses = {s for v in params.get("status", ["live"]) for s in v.split(",")}
    site = state.site
    projects = (site.projects if "live" in statuses else []) + (
        site.archived_projects if "archived" in statuses else []
    )
    order = str(params.get("orderBy", "key"))
    projects = sorted(
        projects,
        key=lambda p: p.name if order.lstrip("+-") == "name" else p.key,
        reverse=order.startswith("-"),
    )
    page = _page_bean(f"{r.api}/project/search", projects, start, size)
    page["values"] = [r.project(p) for p in page["values"]]
    return page


def _page_bean(url: str, items: list, start: int, size: int) -> dict:
    """Jira's offset-paged `PageBean` over `items`, with `nextPage` unless it is the last."""
    is_last = start + size >= len(items)
    out = {
        "self": f"{url}?startAt={start}&maxResults={size}",
        "maxResults": size,
        "startAt": start,
        "total": len(items),
        "isLast": is_last,
        "values": items[start : start + size],
    }
    if not is_last:
        out["nextPage"] = f"{url}?startAt={start + size}&maxResults={size}"
    return out


def search_jql(state: JiraState, r: Renderer, params: dict) -> dict:
    jql = str(params.get("jql") or "")
    fields = _requested_fields(params.get("fields", []), default={"id"})
    ids_only = fields <= {"id", "key"}
    cap = SEARCH_MAX_IDS_ONLY if ids_only else SEARCH_MAX
    size = min(max(1, _int_param(params, "maxResults", SEARCH_DEFAULT)), cap)
    query = parse_jql(jql, state)
    digest = hashlib.sha256(jql.encode()).hexdigest()[:16]
    after = _read_token(params.get("nextPageToken"), digest)
    site = state.site
    projects = sorted(p.key for p in site.projects)
    with site.lock:
        hits = [i for i in site.searchable() if all(matches(i, c) for c in query.clauses)]
        keyed = sorted((sort_key(i, query.order, projects), i) for i in hits)
        keys = [k for k, _ in keyed]
        first = bisect.bisect_right(keys, after) if after is not None else 0
        page = keyed[first : first + size]
        issues = [r.issue(i, fields, SEARCH_COMMENTS) for _, i in page]
    out: dict[str, Any] = {"issues": issues, "isLast": first + size >= len(keyed)}
    if not out["isLast"]:
        out["nextPageToken"] = _token(digest, page[-1][0])
    return out


def _token(digest: str, after: tuple) -> str:
    raw = json.dumps({"q": digest, "a": list(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_token(token: Any, digest: str) -> tuple | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)).decode()
        data = json.loads(text)
        if data["q"] == digest:
            return tuple(int(v) for v in data["a"])
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        pass
    raise JiraError(400, "The provided next page token is invalid or expired.")


def _issue(state: JiraState, id_or_key: str) -> JiraIssue:
    issue = state.site.find(id_or_key)
    if issue is None:
        raise JiraError(404, "Issue does not exist or you do not have permission to see it.")
    return issue


def get_issue(state: JiraState, r: Renderer, params: dict, id_or_key: str) -> dict:
    issue = _issue(state, id_or_key)
    fields = _requested_fields(params.get("fields", []), default=set(ISSUE_FIELDS))
    with state.site.lock:
        return r.issue(issue, fields, None)


def get_comments(state: JiraState, r: Renderer, params: dict, id_or_key: str) -> dict:
    issue = _issue(state, id_or_key)
    start = max(0, _int_param(params, "startAt", 0))
    size = min(max(1, _int_param(params, "maxResults", COMMENT_PAGE_MAX)), COMMENT_PAGE_MAX)
    order = str(params.get("orderBy") or "created")
    with state.site.lock:
        comments = sorted(
            issue.comments, key=lambda c: (c.created_ms, c.id), reverse=order.startswith("-")
        )
        page = comments[start : start + size]
        return {
            "startAt": start,
            "maxResults": size,
            "total": len(comments),
            "comments": [r.comment(issue, c) for c in page],
        }


def removed_search(state: JiraState, r: Renderer, params: dict) -> dict:
    raise JiraError(
        410,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
        "A full migration guideline is available at "
        "https://developer.atlassian.com/changelog/#CHANGE-2046",
    )


ENDPOINTS = {
    "serverInfo": server_info,
    "field": fields_list,
    "myself": myself,
    "user": user,
    "user/bulk": users_bulk,
    "project/search": project_search,
    "search/jql": search_jql,
    "search": removed_search,
}
_ISSUE_PATH = re.compile(r"^issue/([^/]+)(/comment)?$")
ANONYMOUS = {"serverInfo"}


# ------------------------------------------------------------------ HTTP
def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        email, _, token = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    return email, token


async def _params(request: Request) -> dict[str, Any]:
    """Query parameters (repeated ones as lists where it matters), then a POSTed JSON body."""
    query = request.query_params
    params: dict[str, Any] = {k: query.get(k) for k in query}
    for repeated in ("fields", "status", "accountId"):
        if repeated in query:
            params[repeated] = query.getlist(repeated)
    if request.method == "POST":
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise JiraError(400, "Unexpected character in the JSON request body.") from None
        if isinstance(body, dict):
            params.update(body)
            if isinstance(body.get("fields"), list):
                params["fields"] = body["fields"]
    return params


def make_app(state: JiraState) -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        version, path = request.path_params["version"], request.path_params["path"]
        try:
            if version not in ("2", "3"):
                raise JiraError(404, f"Unsupported REST API version {version!r}.")
            credentials = _credentials(request)
            if credentials is not None and credentials not in state.credentials:
                raise JiraError(401, "Client must be authenticated to access this resource.")
            if credentials is None and path not in ANONYMOUS:
                raise JiraError(401, "Client must be authenticated to access this resource.")
            renderer = Renderer(state, version, str(request.base_url))
            params = await _params(request)
            handler, args = (None if path in state.unserved else ENDPOINTS.get(path)), ()
            if handler is None and (match := _ISSUE_PATH.match(path)):
                handler = get_comments if match.group(2) else get_issue
                args = (match.group(1),)
            if handler is None:
                raise JiraError(404, "null for uri: " + str(request.url))
            body = await run_in_threadpool(handler, state, renderer, params, *args)
            return JSONResponse(body)
        except JiraError as exc:
            return JSONResponse(exc.body, status_code=exc.status)

    return Starlette(
        routes=[Route("/rest/api/{version}/{path:path}", endpoint, methods=["GET", "POST"])]
    )


def _route_of(scope: Scope) -> str:
    """`/rest/api/3/search/jql` -> "search/jql"; issue paths -> "issue" / "issue/comment"."""
    path = re.sub(r"^/rest/api/[^/]+/", "", scope["path"])
    match = _ISSUE_PATH.match(path)
    if match:
        return "issue/comment" if match.group(2) else "issue"
    return path


_FAULTS = {
    "429": (429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}),
    "401": (
        401,
        {"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}},
    ),
    "500": (500, {"errorMessages": ["Internal server error."], "errors": {}}),
    "503": (503, {"errorMessages": ["Service unavailable."], "errors": {}}),
}

EMULATOR = Emulator(
    name="jira",
    port_offset=4,
    make_state=lambda company, options: JiraState(company),
    make_app=make_app,
    route_of=_route_of,
    fault_body=_FAULTS.__getitem__,
    client_url=lambda root: root,
    env=lambda url, state: {
        "JIRA_BASE_URL": url,
        "JIRA_EMAIL": SANDBOX_JIRA_EMAIL,
        "JIRA_API_TOKEN": SANDBOX_JIRA_TOKEN,
    },
)
