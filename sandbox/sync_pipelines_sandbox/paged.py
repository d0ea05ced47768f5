"""A declarative emulator for paged collections: a vendor is its data mapping and route table.

Every vendor lists records the same way underneath: check the credential, read the position,
the page size and the filters, select the matching records in a stable order (so paging never
skips or repeats one), serve one slice and say where the next one starts. Vendors differ only in
how they spell that, which a `Collection` declares: its paging style (`Cursor` in the query or
the JSON body, `NextLink`, `OffsetLimit` with offsets or page numbers, `PageToken`), where each
page fact goes in the answer (`report`: dotted answer path -> fact name), the items key and the
page-size parameter. A `RouteTable` turns collections and plain routes into what an `Emulator`
needs, so a new vendor's emulator is its records, their JSON and a few lines:

    TABLE = RouteTable(routes=(Collection(...),), error_body=..., faults={...}, auth=Auth...)
    EMULATOR = Emulator(..., make_app=TABLE.app, route_of=TABLE.route_of,
                        fault_body=TABLE.fault_body, ...)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, compile_path
from starlette.types import Scope

# What a page can report. self: this page's URL; count: records on it; limit: the page size;
# offset/page: where it starts (page counts from 1); total/total_pages: of the whole listing;
# has_more: whether a next page exists; cursor: the opaque token of the next page (None on the
# last); next/previous: absolute links to the neighbouring pages (None when there is none).
FACTS = frozenset(
    ("self", "count", "limit", "offset", "page", "total", "total_pages", "has_more")
    + ("cursor", "next", "previous")
)
# answer path ("records.cursor") -> fact name, or (fact name, value written when it is None);
# a plain fact name that is None leaves its path (and parents it alone would create) out.
Report = Mapping[str, "str | tuple[str, Any]"]
ErrorBody = Callable[[int, str], dict]  # (status, message) -> the vendor's JSON error body


class ApiError(Exception):
    """A request the vendor refuses: answered with `status` and the vendor's error body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Call:
    """One request as a route sees it: the emulator state, where it was sent, its arguments."""

    state: Any
    base: str  # "http://127.0.0.1:8705", no trailing slash
    path: str
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    body: Mapping[str, Any]

    @classmethod
    async def of(cls, request: Request, state: Any) -> Call:
        body: Any = {}
        if request.method != "GET" and await request.body():
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "the request body must be a JSON object")
        base = str(request.base_url).rstrip("/")
        query = dict(request.query_params)
        return cls(state, base, request.url.path, dict(request.path_params), query, body)

    def arg(self, name: str) -> Any:
        """A query parameter, else the value at a dotted path of the JSON body ("filter.from")."""
        if name in self.query:
            return self.query[name]
        value: Any = self.body
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        return value

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.arg(name)
        try:
            value = default if raw is None else int(raw)
        except (TypeError, ValueError):
            raise ApiError(400, f"'{name}' must be an integer") from None
        if not low <= value <= high:
            raise ApiError(400, f"'{name}' must be between {low} and {high}")
        return value

    def link(self, **params: Any) -> str:
        """This call's URL with `params` replacing (and following) its query parameters."""
        query = {k: v for k, v in self.query.items() if k not in params}
        return f"{self.base}{self.path}?" + urlencode({**query, **params})

    @property
    def self_link(self) -> str:
        return self.base + self.path + (f"?{urlencode(self.query)}" if self.query else "")

    def fingerprint(self, paging_args: Iterable[str]) -> str:
        """A digest of every argument but the paging ones: the listing a cursor belongs to."""
        skip = set(paging_args)
        args = [
            {k: v for k, v in self.query.items() if k not in skip},
            {k: v for k, v in self.body.items() if k not in skip},
            self.path,
        ]
        text = json.dumps(args, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# ----------------------------------------------------------------- opaque cursors
_CURSOR_KEY = b"sync-pipelines-sandbox cursor"


def _tag(payload: str) -> str:
    return hmac.new(_CURSOR_KEY, payload.encode(), "sha256").hexdigest()[:10]


def encode_cursor(offset: int, fingerprint: str) -> str:
    """An opaque token for `offset` in the listing `fingerprint`, signed against tampering."""
    payload = f"{offset}:{fingerprint}"
    raw = f"{payload}:{_tag(payload)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, fingerprint: str, param: str) -> int:
    """The offset a token from `encode_cursor` stands for; 400 when it was altered or made up,
    or belongs to a listing with other filters."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        offset, bound, tag = raw.split(":")
        valid = hmac.compare_digest(tag, _tag(f"{offset}:{bound}")) and int(offset) >= 0
    except ValueError:  # bad base64, bad UTF-8, not three fields, not a number
        valid = False
    if not valid:
        raise ApiError(400, f"'{param}' is not a cursor this API issued")
    if bound != fingerprint:
        raise ApiError(400, f"'{param}' belongs to a listing with other filters")
    return int(offset)


# ----------------------------------------------------------------- paging styles
class Paging(Protocol):
    """A paging style: where a request's position is read and the page facts it adds."""

    param: str  # the position argument (query parameter or JSON body key)
    report: Report
    omit_empty: bool  # leave the items key out of an empty answer

    def position(self, call: Call) -> Any: ...

    def offset(self, position: Any, size: int, fingerprint: str) -> int: ...

    def moves(
        self, call: Call, offset: int, size: int, total: int, size_param: str, fingerprint: str
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Cursor:
    """An opaque cursor read from the query or the JSON body (Gong's POST `cursor`, Fathom's
    `cursor`, HubSpot's `after`), reported as the `cursor` fact; with `has_more` if told."""

    param: str = "cursor"
    report: Report = field(default_factory=lambda: {"next_cursor": "cursor"})
    omit_empty: bool = False

    def position(self, call: Call) -> str | None:
        token = call.arg(self.param)
        return None if token in (None, "") else str(token)

    def offset(self, position: str | None, size: int, fingerprint: str) -> int:
        return 0 if position is None else decode_cursor(position, fingerprint, self.param)

    def moves(
        self, call: Call, offset: int, size: int, total: int, size_param: str, fingerprint: str
    ) -> dict[str, Any]:
        if offset + size >= total:
            return {"cursor": None, "next": None, "previous": None}
        token = encode_cursor(offset + size, fingerprint)
        link = call.link(**{self.param: token, size_param: size})
        return {"cursor": token, "next": link, "previous": None}


@dataclass(frozen=True)
class NextLink(Cursor):
    """A cursor the client never builds: it follows the absolute `next` link carrying it."""

    report: Report = field(default_factory=lambda: {"links.next": "next"})


@dataclass(frozen=True)
class PageToken(Cursor):
    """Google's style: `pageToken` in, `nextPageToken` out; Gmail leaves the items key out of
    an empty answer (omit_empty)."""

    param: str = "pageToken"
    report: Report = field(default_factory=lambda: {"nextPageToken": "cursor"})


@dataclass(frozen=True)
class OffsetLimit:
    """A numeric position beside the page size: an offset (Tempo's `offset`) or, with `pages`,
    a page number from 1 (CallRail's `page`); `next`/`previous` links carry both."""

    param: str = "offset"
    pages: bool = False
    most: int = 10**9  # the largest offset or page number accepted
    report: Report = field(default_factory=lambda: {"offset": "offset", "total": "total"})
    omit_empty: bool = False

    def position(self, call: Call) -> int:
        low = 1 if self.pages else 0
        return call.int_arg(self.param, low, low, self.most)

    def offset(self, position: int, size: int, fingerprint: str) -> int:
        return (position - 1) * size if self.pages else position

    def moves(
        self, call: Call, offset: int, size: int, total: int, size_param: str, fingerprint: str
    ) -> dict[str, Any]:
        def at(start: int) -> str:
            position = start // size + 1 if self.pages else start
            return call.link(**{self.param: position, size_param: size})

        return {
            "cursor": None,
            "next": at(offset + size) if offset + size < total else None,
            "previous": at(max(0, offset - size)) if offset > 0 else None,
        }


# ----------------------------------------------------------------- collections
@dataclass(frozen=True)
class PageSize:
    param: str  # "limit", "maxResults", "per_page", or a JSON body key
    default: int
    most: int


@dataclass(frozen=True)
class Since:
    """An updated-since filter: only records whose `field` is at or after the parsed `param`."""

    param: str
    parse: Callable[[str], Any]  # raises ValueError on a bad value
    field: str
    expects: str  # ends the 400 message "'<param>' must be <expects>"

    def parse_from(self, call: Call) -> Any:
        raw = call.arg(self.param)
        if raw in (None, ""):
            return None
        try:
            return self.parse(str(raw))
        except ValueError:
            raise ApiError(400, f"'{self.param}' must be {self.expects}") from None


def field_of(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, Mapping) else getattr(record, name)


def _no_filters(call: Call) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Collection:
    """One listing route. `filters` parses the vendor's own filter arguments (raising
    ApiError); `records(state, filters)` gives the matching records in any order: they are
    served sorted by `order_by` (an id, or a time then an id), so pages never overlap."""

    path: str  # Starlette path, "/4/worklogs"
    route: str  # knob route name
    records: Callable[[Any, Mapping[str, Any]], Iterable[Any]]
    render: Callable[[Any, Call], Any]  # (record, call) -> its JSON
    paging: Paging
    items_key: str
    size: PageSize
    method: str = "GET"
    filters: Callable[[Call], Mapping[str, Any]] = _no_filters
    since: Since | None = None
    order_by: tuple[str, ...] = ("id",)

    def __post_init__(self) -> None:
        named = {f if isinstance(f, str) else f[0] for f in self.paging.report.values()}
        if named - FACTS:
            raise ValueError(
                f"{self.path}: unknown page facts {sorted(named - FACTS)}; use {sorted(FACTS)}"
            )

    def serve(self, call: Call) -> dict:
        position = self.paging.position(call)
        size = call.int_arg(self.size.param, self.size.default, 1, self.size.most)
        filters = self.filters(call)
        since = self.since.parse_from(call) if self.since else None
        fingerprint = call.fingerprint((self.paging.param, self.size.param))
        offset = self.paging.offset(position, size, fingerprint)
        matching = sorted(self._select(call.state, filters, since), key=self._order)
        page, total = matching[offset : offset + size], len(matching)
        facts = {
            "self": call.self_link,
            "count": len(page),
            "limit": size,
            "offset": offset,
            "page": offset // size + 1,
            "total": total,
            "total_pages": math.ceil(total / size),
            "has_more": offset + size < total,
            **self.paging.moves(call, offset, size, total, self.size.param, fingerprint),
        }
        body: dict[str, Any] = {}
        for path, fact in self.paging.report.items():
            _put(body, path, fact, facts)
        if page or not self.paging.omit_empty:
            body[self.items_key] = [self.render(record, call) for record in page]
        return body

    def _select(self, state: Any, filters: Mapping[str, Any], since: Any) -> Iterable[Any]:
        records = self.records(state, filters)
        if since is None or self.since is None:
            return records
        name = self.since.field
        return (r for r in records if field_of(r, name) >= since)

    def _order(self, record: Any) -> tuple:
        return tuple(field_of(record, name) for name in self.order_by)


def _put(body: dict, path: str, fact: str | tuple[str, Any], facts: Mapping[str, Any]) -> None:
    name, when_none = (fact, None) if isinstance(fact, str) else fact
    value = facts[name]
    if value is None:
        if isinstance(fact, str):
            return
        value = when_none
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


@dataclass(frozen=True)
class Plain:
    """A route that lists nothing (one record, a mutation): `handle(call)` gives the JSON
    answer or raises ApiError."""

    path: str
    route: str
    handle: Callable[[Call], Any]
    method: str = "GET"


# ----------------------------------------------------------------- auth and the table
def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else None


def _basic(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(value[6:].strip()).decode().partition(":")
    except ValueError:
        return None
    return (user, password) if sep else None


@dataclass(frozen=True)
class Auth:
    """The credential every route of a vendor demands; anything else is the vendor's 401.
    `accepted(state)` gives the credentials valid now (tests rotate them)."""

    read: Callable[[Headers], Any]  # request headers -> the presented credential, or None
    accepted: Callable[[Any], Container[Any]]
    message: str

    @classmethod
    def bearer(cls, accepted: Callable[[Any], Container[str]], message: str) -> Auth:
        return cls(_bearer, accepted, message)

    @classmethod
    def basic(cls, accepted: Callable[[Any], Container[tuple[str, str]]], message: str) -> Auth:
        return cls(_basic, accepted, message)

    @classmethod
    def header(cls, name: str, accepted: Callable[[Any], Container[str]], message: str) -> Auth:
        return cls(lambda headers: headers.get(name), accepted, message)

    def check(self, headers: Headers, state: Any) -> None:
        credential = self.read(headers)
        if credential is None or credential not in self.accepted(state):
            raise ApiError(401, self.message)


@dataclass(frozen=True)
class RouteTable:
    """A vendor's routes, credential, error shape and fault messages: its Starlette app, knob
    route names and fault bodies for the `Emulator`."""

    routes: tuple[Collection | Plain, ...]
    error_body: ErrorBody
    faults: Mapping[str, str]  # "429" | "401" | "500" | "503" -> the vendor's message
    auth: Auth | None = None

    def app(self, state: Any) -> Starlette:
        return Starlette(
            routes=[
                Route(r.path, self._endpoint(r, state), methods=[r.method]) for r in self.routes
            ]
        )

    def _endpoint(self, route: Collection | Plain, state: Any) -> Callable:
        answer = route.serve if isinstance(route, Collection) else route.handle

        async def endpoint(request: Request) -> JSONResponse:
            try:
                if self.auth is not None:
                    self.auth.check(request.headers, state)
                call = await Call.of(request, state)
                return JSONResponse(await run_in_threadpool(answer, call))
            except ApiError as exc:
                body = self.error_body(exc.status, exc.message)
                return JSONResponse(body, status_code=exc.status)

        return endpoint

    @functools.cached_property
    def _patterns(self) -> list[tuple[Any, str, str]]:
        return [(compile_path(r.path)[0], r.method, r.route) for r in self.routes]

    def route_of(self, scope: Scope) -> str:
        """The knob route name of a request: its route's (the method decides between routes on
        one path); an unknown path is named by itself."""
        path, method = scope["path"], scope.get("method")
        on_path = [(m, name) for regex, m, name in self._patterns if regex.match(path)]
        for route_method, name in on_path:
            if route_method == method or (route_method == "GET" and method == "HEAD"):
                return name
        return on_path[0][1] if on_path else path

    def fault_body(self, kind: str) -> tuple[int, dict]:
        """An injected fault ("429", "401", "500", "503") in the vendor's error shape."""
        return int(kind), self.error_body(int(kind), self.faults[kind])
