"""Notion API emulator: search, block children, pages and users, in Notion's shapes and errors.

Served under `/v1/` so `notion_client.Client(base_url="http://127.0.0.1:PORT")` works unchanged.
Like Notion: Bearer auth and a `Notion-Version` header on every request; lists are
`{object: "list", results, next_cursor, has_more, type, <type>: {}}`; search has no time
filter, only a sort by `last_edited_time`; `page_size` above 100 is a 400 `validation_error`;
trashed pages are left out of search unless `filter.in_trash` is true, which returns only them,
while page reads still answer them with `in_trash` (and its older alias `archived`) set; a page
deleted or no longer shared is gone from search and 404 `object_not_found` on every read;
created/last-edited times are rounded down to the minute; from version 2025-09-03 databases
appear as data sources (search type `page_or_data_source`, page parents `data_source_id`),
before it as databases (`page_or_database`, `database_id`). Errors are
`{object: "error", status, code, message, request_id}`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.notion.data import (
    JIRA_BROWSE_URL,
    Block,
    Database,
    NotionPage,
    NotionUser,
    NotionWorkspace,
    Span,
    minute_floor,
)

SANDBOX_NOTION_TOKEN = "ntn_sandbox_token"
DATA_SOURCES_VERSION = "2025-09-03"  # the version that renamed databases to data sources
MAX_PAGE_SIZE = 100
_ANNOTATIONS = {
    "bold": False,
    "italic": False,
    "strikethrough": False,
    "underline": False,
    "code": False,
    "color": "default",
}
_PROPERTY_IDS = {
    "Status": "%3DcSt",
    "Owner": "Ow%5Br",
    "Project": "Pr%3Ej",
    "Date": "Dt%3Ba",
    "Attendees": "At%7Dn",
}


class NotionError(Exception):
    """An error answer: HTTP status, Notion's error code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(status: int, code: str, message: str) -> dict:
    return {
        "object": "error",
        "status": status,
        "code": code,
        "message": message,
        "request_id": str(uuid.uuid4()),
    }


class NotionState:
    """The workspace served, the tokens accepted and the integration's capabilities."""

    def __init__(self, workspace: NotionWorkspace, token: str = SANDBOX_NOTION_TOKEN):
        self.workspace = workspace
        self.valid_tokens: set[str] = {token}
        self.can_read_users = True  # False: /v1/users answers 403 restricted_resource

    def set_token(self, token: str) -> None:
        self.valid_tokens = {token}

    def edit_page(self, page_id: str, text: str, at: float | None = None) -> int:
        """Rewrite the page's first paragraph; its last_edited_time becomes now (or `at`)."""
        return self.workspace.edit_page(page_id, text, at)

    def unshare_page(self, page_id: str) -> None:
        self.workspace.unshare_page(page_id)

    def trash_page(self, page_id: str, at: float | None = None) -> int:
        """Move the page to the trash as a user would; returns its last_edited_time."""
        return self.workspace.trash_page(page_id, at)


# ------------------------------------------------------------------ serializers
def iso(epoch: int) -> str:
    """Notion's timestamp format, rounded down to the minute: 2025-11-20T10:31:00.000Z."""
    moment = dt.datetime.fromtimestamp(minute_floor(epoch), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:00.000Z")


def _user_ref(user_id: str) -> dict:
    return {"object": "user", "id": user_id}


def rich_text(ws: NotionWorkspace, spans: list[Span]) -> list[dict]:
    out = []
    for kind, value in spans:
        if kind == "user":
            out.append(
                {
                    "type": "mention",
                    "mention": {"type": "user", "user": _user_ref(value)},
                    "annotations": dict(_ANNOTATIONS),
                    "plain_text": "@" + ws.users[value].name,
                    "href": None,
                }
            )
            continue
        link = {"url": JIRA_BROWSE_URL + value} if kind == "issue" else None
        out.append(
            {
                "type": "text",
                "text": {"content": value, "link": link},
                "annotations": dict(_ANNOTATIONS),
                "plain_text": value,
                "href": link["url"] if link else None,
            }
        )
    return out


def _plain(text: str) -> list[dict]:
    return [
        {
            "type": "text",
            "text": {"content": text, "link": None},
            "annotations": dict(_ANNOTATIONS),
            "plain_text": text,
            "href": None,
        }
    ]


def _url(title: str, object_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")
    return f"https://www.notion.so/{slug + '-' if slug else ''}{object_id.replace('-', '')}"


def _parent(ws: NotionWorkspace, page: NotionPage, version: str) -> dict:
    if page.parent_type == "workspace":
        return {"type": "workspace", "workspace": True}
    if page.parent_type == "page":
        return {"type": "page_id", "page_id": page.parent_id}
    db = ws.databases[page.parent_id]
    if version >= DATA_SOURCES_VERSION:
        return {"type": "data_source_id", "data_source_id": db.data_source_id, "database_id": db.id}
    return {"type": "database_id", "database_id": db.id}


def _properties(ws: NotionWorkspace, page: NotionPage) -> dict:
    title_name = "title"
    if page.parent_type == "database":
        title_name = ws.databases[page.parent_id].title_property
    props: dict[str, Any] = {}
    for name, (kind, value) in page.properties.items():
        prop: dict[str, Any] = {"id": _PROPERTY_IDS.get(name, name), "type": kind}
        if kind == "select":
            prop["select"] = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, value)),
                "name": value,
                "color": "default",
            }
        elif kind == "people":
            prop["people"] = [_user_ref(u) for u in value]
        else:
            prop["date"] = {"start": value, "end": None, "time_zone": None}
        props[name] = prop
    props[title_name] = {"id": "title", "type": "title", "title": _plain(page.title)}
    return props


def page_json(ws: NotionWorkspace, page: NotionPage, version: str) -> dict:
    return {
        "object": "page",
        "id": page.id,
        "created_time": iso(page.created),
        "last_edited_time": iso(page.edited),
        "created_by": _user_ref(page.created_by),
        "last_edited_by": _user_ref(page.edited_by),
        "cover": None,
        "icon": None,
        "parent": _parent(ws, page, version),
        "archived": page.in_trash,
        "in_trash": page.in_trash,
        "is_locked": False,
        "properties": _properties(ws, page),
        "url": _url(page.title, page.id),
        "public_url": None,
    }


def database_json(db: Database, version: str) -> dict:
    common = {
        "id": db.data_source_id if version >= DATA_SOURCES_VERSION else db.id,
        "created_time": iso(db.created),
        "last_edited_time": iso(db.edited),
        "created_by": _user_ref(db.author),
        "last_edited_by": _user_ref(db.author),
        "title": _plain(db.title),
        "description": [],
        "properties": {
            db.title_property: {
                "id": "title",
                "name": db.title_property,
                "type": "title",
                "title": {},
            }
        },
        "archived": False,
        "in_trash": False,
        "url": _url(db.title, db.id),
        "public_url": None,
    }
    if version >= DATA_SOURCES_VERSION:
        return {
            "object": "data_source",
            **common,
            "parent": {"type": "database_id", "database_id": db.id},
            "database_parent": {"type": "workspace", "workspace": True},
        }
    return {
        "object": "database",
        **common,
        "parent": {"type": "workspace", "workspace": True},
        "is_inline": False,
    }


def _block_payload(ws: NotionWorkspace, block: Block) -> dict:
    kind, extra = block.type, block.extra
    if kind == "child_page":
        return {"title": extra["title"]}
    if kind == "divider":
        return {}
    if kind == "image":
        return {
            "caption": _plain(extra["caption"]),
            "type": "external",
            "external": {"url": extra["url"]},
        }
    if kind == "bookmark":
        return {"caption": [], "url": extra["url"]}
    payload: dict[str, Any] = {"rich_text": rich_text(ws, block.spans)}
    if kind == "code":
        return {"caption": [], **payload, "language": extra.get("language", "plain text")}
    if kind == "to_do":
        payload["checked"] = bool(extra.get("checked"))
    elif kind == "callout":
        payload["icon"] = {"type": "emoji", "emoji": extra.get("emoji", "💡")}
    elif kind.startswith("heading_"):
        payload["is_toggleable"] = False
    payload["color"] = "gray_background" if kind == "callout" else "default"
    return payload


def block_json(ws: NotionWorkspace, block: Block) -> dict:
    parent_key = "page_id" if block.parent_id in ws.pages else "block_id"
    return {
        "object": "block",
        "id": block.id,
        "parent": {"type": parent_key, parent_key: block.parent_id},
        "created_time": iso(block.created),
        "last_edited_time": iso(block.edited),
        "created_by": _user_ref(block.author),
        "last_edited_by": _user_ref(block.author),
        "has_children": ws.has_children(block),
        "archived": False,
        "in_trash": False,
        "type": block.type,
        block.type: _block_payload(ws, block),
    }


def user_json(user: NotionUser) -> dict:
    if user.is_bot:
        return {
            "object": "user",
            "id": user.id,
            "name": user.name,
            "avatar_url": None,
            "type": "bot",
            "bot": {},
        }
    return {
        "object": "user",
        "id": user.id,
        "name": user.name,
        "avatar_url": None,
        "type": "person",
        "person": {"email": user.email},
    }


def list_json(kind: str, results: list[dict], next_cursor: str | None) -> dict:
    return {
        "object": "list",
        "results": results,
        "next_cursor": next_cursor,
        "has_more": next_cursor is not None,
        "type": kind,
        kind: {},
        "request_id": str(uuid.uuid4()),
    }


# ------------------------------------------------------------------ validation
def _validation(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def page_size(value: Any, where: str) -> int:
    if value is None:
        return MAX_PAGE_SIZE
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = None
    if size is None or isinstance(value, bool) or str(size) != str(value).strip():
        raise _validation(
            f"{where} failed validation: {where}.page_size should be a number, "
            f"instead was `{json.dumps(value)}`."
        )
    if size < 1 or size > MAX_PAGE_SIZE:
        bound = "≤ `100`" if size > MAX_PAGE_SIZE else "≥ `1`"
        raise _validation(
            f"{where} failed validation: {where}.page_size should be {bound}, instead was `{size}`."
        )
    return size


def normalize_id(raw: str) -> str | None:
    """Notion accepts ids with or without dashes."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _sort_key(edited: int, object_id: str) -> tuple[int, int]:
    """Search order: last-edited time, ties by id; the cursor encodes this key."""
    return edited, int(object_id.replace("-", "")[:16], 16)


def _search_cursor(key: tuple[int, int]) -> str:
    return str(uuid.UUID(int=(key[0] << 64) | key[1]))


def _read_search_cursor(raw: Any) -> tuple[int, int]:
    cursor = normalize_id(str(raw)) if isinstance(raw, str) else None
    if cursor is None:
        raise _validation(f"start_cursor provided is invalid: {raw}")
    value = uuid.UUID(cursor).int
    return value >> 64, value & ((1 << 64) - 1)


def _search_filter(flt: Any, db_object: str) -> tuple[set[str], bool]:
    """The object types a search filter asks for and whether it asks for the trash: an
    object filter (`property: "object"`, `value`), optionally with `in_trash`, or
    `{in_trash}` alone."""
    wanted = {"page", db_object}
    if flt is None:
        return wanted, False
    flt = flt if isinstance(flt, dict) else {}
    in_trash = flt.get("in_trash", False)
    if not isinstance(in_trash, bool):
        raise _validation(
            "body failed validation: body.filter.in_trash should be a boolean, "
            f"instead was `{json.dumps(in_trash)}`."
        )
    if set(flt) == {"in_trash"}:
        return wanted, in_trash
    value = flt.get("value")
    if not (isinstance(value, str) and value in wanted) or flt.get("property") != "object":
        raise _validation(
            f'body failed validation: body.filter.value should be `"page"` or '
            f'`"{db_object}"`, instead was `{json.dumps(value)}`.'
        )
    return {value}, in_trash


# ------------------------------------------------------------------ endpoints
def search(state: NotionState, body: dict, version: str) -> dict:
    ws = state.workspace
    size = page_size(body.get("page_size"), "body")
    db_object = "data_source" if version >= DATA_SOURCES_VERSION else "database"
    wanted, in_trash = _search_filter(body.get("filter"), db_object)
    descending = True
    sort = body.get("sort")
    if sort is not None:
        if not isinstance(sort, dict) or sort.get("timestamp") != "last_edited_time":
            raise _validation(
                'body failed validation: body.sort.timestamp should be `"last_edited_time"`.'
            )
        if sort.get("direction", "descending") not in ("ascending", "descending"):
            raise _validation(
                "body failed validation: body.sort.direction should be "
                '`"ascending"` or `"descending"`.'
            )
        descending = sort.get("direction", "descending") == "descending"
    query = str(body.get("query") or "").strip().lower()
    with ws.lock:
        items: list[tuple[tuple[int, int], Callable[[], dict]]] = []
        if "page" in wanted:
            for page in ws.shared_pages(in_trash):
                if query in page.title.lower():
                    items.append(
                        (_sort_key(page.edited, page.id), lambda p=page: page_json(ws, p, version))
                    )
        if db_object in wanted and not in_trash:  # databases are never in the trash here
            for db in ws.databases.values():
                if query in db.title.lower():
                    items.append(
                        (_sort_key(db.edited, db.id), lambda d=db: database_json(d, version))
                    )
        items.sort(key=lambda item: item[0], reverse=descending)
        if body.get("start_cursor") is not None:
            after = _read_search_cursor(body["start_cursor"])
            items = [i for i in items if (i[0] <= after if descending else i[0] >= after)]
        page_items = items[:size]
        next_cursor = _search_cursor(items[size][0]) if len(items) > size else None
        results = [make() for _, make in page_items]
    kind = "page_or_data_source" if version >= DATA_SOURCES_VERSION else "page_or_database"
    return list_json(kind, results, next_cursor)


def block_children(state: NotionState, block_id: str, params: dict) -> dict:
    ws = state.workspace
    size = page_size(params.get("page_size"), "query")
    normalized = normalize_id(block_id)
    with ws.lock:
        children = ws.children(normalized) if normalized else None
        if children is None:
            raise NotionError(
                404,
                "object_not_found",
                f"Could not find block with ID: {block_id}. Make sure the relevant pages and "
                "databases are shared with your integration.",
            )
        start = 0
        cursor = params.get("start_cursor")
        if cursor:
            ids = [b.id for b in children]
            if normalize_id(cursor) not in ids:
                raise _validation(f"start_cursor provided is invalid: {cursor}")
            start = ids.index(normalize_id(cursor))
        chunk = children[start : start + size]
        rest = children[start + size : start + size + 1]
        results = [block_json(ws, b) for b in chunk]
    return list_json("block", results, rest[0].id if rest else None)


def retrieve_page(state: NotionState, page_id: str, version: str) -> dict:
    ws = state.workspace
    normalized = normalize_id(page_id)
    with ws.lock:
        page = ws.pages.get(normalized) if normalized else None
        if page is None or not page.shared:
            raise NotionError(
                404,
                "object_not_found",
                f"Could not find page with ID: {page_id}. Make sure the relevant pages and "
                "databases are shared with your integration.",
            )
        return {**page_json(ws, page, version), "request_id": str(uuid.uuid4())}


def list_users(state: NotionState, params: dict) -> dict:
    if not state.can_read_users:
        raise NotionError(403, "restricted_resource", "Insufficient permissions for this endpoint.")
    size = page_size(params.get("page_size"), "query")
    users = list(state.workspace.users.values())
    start = 0
    cursor = params.get("start_cursor")
    if cursor:
        ids = [u.id for u in users]
        if normalize_id(cursor) not in ids:
            raise _validation(f"start_cursor provided is invalid: {cursor}")
        start = ids.index(normalize_id(cursor))
    rest = users[start + size : start + size + 1]
    return list_json(
        "user", [user_json(u) for u in users[start : start + size]], rest[0].id if rest else None
    )


# ------------------------------------------------------------------ HTTP
def _check_headers(state: NotionState, request: Request) -> str:
    """Auth first, then the version header; returns the Notion-Version asked for."""
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    if token not in state.valid_tokens:
        raise NotionError(401, "unauthorized", "API token is invalid.")
    version = request.headers.get("notion-version")
    if not version:
        raise NotionError(
            400,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined, "
            "instead was `undefined`.",
        )
    return version


def make_app(state: NotionState) -> Starlette:
    def endpoint(handler: Callable[[Request, str], Any]):
        async def serve(request: Request) -> JSONResponse:
            try:
                version = _check_headers(state, request)
                return JSONResponse(await handler(request, version))
            except NotionError as exc:
                return JSONResponse(
                    error_body(exc.status, exc.code, exc.message), status_code=exc.status
                )

        return serve

    async def search_route(request: Request, version: str) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None
        if not isinstance(body, dict):
            raise _validation("body failed validation: body should be an object.")
        return search(state, body, version)

    async def children_route(request: Request, version: str) -> dict:
        return block_children(state, request.path_params["block_id"], dict(request.query_params))

    async def page_route(request: Request, version: str) -> dict:
        return retrieve_page(state, request.path_params["page_id"], version)

    async def users_route(request: Request, version: str) -> dict:
        return list_users(state, dict(request.query_params))

    async def unknown_route(request: Request, version: str) -> dict:
        raise NotionError(400, "invalid_request_url", "Invalid request URL.")

    methods = ["GET", "POST", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/v1/search", endpoint(search_route), methods=["POST"]),
            Route("/v1/blocks/{block_id}/children", endpoint(children_route), methods=["GET"]),
            Route("/v1/pages/{page_id}", endpoint(page_route), methods=["GET"]),
            Route("/v1/users", endpoint(users_route), methods=["GET"]),
            Route("/{path:path}", endpoint(unknown_route), methods=methods),
        ]
    )


_ROUTES = (
    (re.compile(r"^/v1/search/?$"), "search"),
    (re.compile(r"^/v1/blocks/[^/]+/children/?$"), "blocks.children.list"),
    (re.compile(r"^/v1/pages/[^/]+/?$"), "pages.retrieve"),
    (re.compile(r"^/v1/users/?$"), "users.list"),
)


def route_of(scope: Scope) -> str:
    """Knob route names follow the SDK's methods: search, blocks.children.list, ..."""
    path = scope["path"]
    return next((name for pattern, name in _ROUTES if pattern.match(path)), path)


_FAULTS = {
    "429": (429, "rate_limited", "You have been rate limited. Please try again in a few minutes."),
    "401": (401, "unauthorized", "API token is invalid."),
    "500": (500, "internal_server_error", "Unexpected error occurred."),
    "503": (503, "service_unavailable", "Notion is unavailable, please try again later."),
}


def fault_body(kind: str) -> tuple[int, dict]:
    status, code, message = _FAULTS[kind]
    return status, error_body(status, code, message)


EMULATOR = Emulator(
    name="notion",
    port_offset=6,
    make_state=lambda company, options: NotionState(NotionWorkspace.of(company)),
    make_app=make_app,
    route_of=route_of,
    fault_body=fault_body,
    client_url=lambda root: root,
    env=lambda url, state: {"NOTION_TOKEN": SANDBOX_NOTION_TOKEN, "NOTION_BASE_URL": url},
)
