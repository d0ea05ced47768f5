"""A declarative emulator for paged collections: a vendor is its data mapping and route table.

Every vendor lists records alike: check the credential, read the position, page size and
filters, select the matching records in a stable order (so paging never skips or repeats one),
serve one slice and say where the next starts. A `Collection` declares how a vendor spells that:
its paging style (`Cursor` in the query or JSON body, `NextLink`, `OffsetLimit`, `PageToken`),
where each page fact goes in the answer (`report`), the items key and the page-size parameter.
A `RouteTable` of collections and plain routes gives an `Emulator` its `make_app=TABLE.app`,
`route_of=TABLE.route_of` and `fault_body=TABLE.fault_body`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import operator
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
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
# has_more: whether a next page exists; cursor: the position argument (token, offset or page)
# of the next page; next/previous: absolute links to the neighbouring pages. The last three are
# None where there is no such page.
FACTS = frozenset(
    "self count limit offset page total total_pages has_more cursor next previous".split()
)
# answer path ("records.cursor") -> fact name, or (fact name, value written when it is None);
# a plain fact name that is None leaves its path (and parents it alone would create) out.
Report = Mapping[str, "str | tuple[str, Any]"]
ErrorBody = Callable[[int, str], dict]  # (status, message) -> the vendor's JSON error body


class ApiError(Exception):
    """A request the vendor refuses: answered with `status` and the vendor's error body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


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
        base, query = str(request.base_url).rstrip("/"), dict(request.query_params)
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
        args = [{k: v for k, v in d.items() if k not in skip} for d in (self.query, self.body)]
        text = json.dumps([self.path, *args], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


_CURSOR_KEY = b"sync-pipelines-sandbox cursor"


def _tag(payload: str) -> str:
    return hmac.new(_CURSOR_KEY, payload.encode(), "sha256").hexdigest()[:10]


def encode_cursor(offset: int, fingerprint: str) -> str:
    """An opaque token for `offset` in the listing `fingerprint`, signed against tampering."""
    payload = f"{offset}:{fingerprint}"
    return base64.urlsafe_b64encode(f"{payload}:{_tag(payload)}".encode()).decode().rstrip("=")


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


@dataclass(frozen=True)
class Cursor:
    """An opaque cursor read from the query or the JSON body (a POST body's `cursor`, a query's
    `cursor` or `after`); bound to the request's filters, signed against tampering."""

    param: str = "cursor"
    report: Report = field(default_factory=lambda: {"next_cursor": "cursor"})
    omit_empty: bool = False  # leave the items key out of an empty answer

    def position(self, call: Call) -> str | None:
        token = call.arg(self.param)
        return None if token in (None, "") else str(token)

    def offset(self, position: str | None, size: int, fingerprint: str) -> int:
        return 0 if position is None else decode_cursor(position, fingerprint, self.param)

    def token(self, offset: int, size: int, fingerprint: str) -> str:
        return encode_cursor(offset, fingerprint)


@dataclass(frozen=True)
class NextLink(Cursor):
    """A cursor the client never builds: it follows the absolute `next` link carrying it."""

    report: Report = field(default_factory=lambda: {"links.next": "next"})


@dataclass(frozen=True)
class PageToken(Cursor):
    """Google's `pageToken` in, `nextPageToken` out (omit_empty: no items key when empty)."""

    param: str = "pageToken"
    report: Report = field(default_factory=lambda: {"nextPageToken": "cursor"})


@dataclass(frozen=True)
class OffsetLimit:
    """A number beside the page size: an offset (`offset`), or with `pages` a page from 1."""

    param: str = "offset"
    pages: bool = False
    most: int = 10**9  # the largest offset or page number accepted
    report: Report = field(default_factory=lambda: {"offset": "offset", "total": "total"})
    omit_empty: bool = False

    def position(self, call: Call) -> int:
        return call.int_arg(self.param, int(self.pages), int(self.pages), self.most)

    def offset(self, position: int, size: int, fingerprint: str) -> int:
        return (position - 1) * size if self.pages else position

    def token(self, offset: int, size: int, fingerprint: str) -> int:
        return offset // size + 1 if self.pages else offset


# A paging style: `position` reads the position argument `param` (before the filters), `offset`
# turns it into an offset (checking a cursor's filters), `token` writes the one for an offset.
Paging = Cursor | OffsetLimit


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


def fields_of(records: list[Any], *names: str) -> Callable[[Any], Any]:
    """A getter of `names` for these records (mappings or objects), built once per listing."""
    is_mapping = bool(records) and isinstance(records[0], Mapping)
    return (operator.itemgetter if is_mapping else operator.attrgetter)(*names)


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
    filters: Callable[[Call], Mapping[str, Any]] = lambda call: {}
    since: Since | None = None
    order_by: tuple[str, ...] = ("id",)

    def __post_init__(self) -> None:
        named = {f if isinstance(f, str) else f[0] for f in self.paging.report.values()}
        if named - FACTS:
            raise ValueError(f"{self.path}: unknown page facts {sorted(named - FACTS)}")

    def serve(self, call: Call) -> dict:
        position = self.paging.position(call)
        size = call.int_arg(self.size.param, self.size.default, 1, self.size.most)
        filters = self.filters(call)
        since = self.since.parse_from(call) if self.since else None
        fingerprint = call.fingerprint((self.paging.param, self.size.param))
        offset = self.paging.offset(position, size, fingerprint)
        matching = list(self.records(call.state, filters))
        if self.since is not None and since is not None:
            updated = fields_of(matching, self.since.field)
            matching = [r for r in matching if updated(r) >= since]
        matching.sort(key=fields_of(matching, *self.order_by))
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
            **self._moves(call, offset, size, total, fingerprint),
        }
        body: dict[str, Any] = {}
        for path, fact in self.paging.report.items():
            _put(body, path, fact, facts)
        if page or not self.paging.omit_empty:
            body[self.items_key] = [self.render(record, call) for record in page]
        return body

    def _moves(self, call: Call, offset: int, size: int, total: int, fingerprint: str) -> dict:
        """The next page's position argument and the links to both neighbouring pages."""

        def at(start: int) -> tuple[Any, str]:
            position = self.paging.token(start, size, fingerprint)
            return position, call.link(**{self.paging.param: position, self.size.param: size})

        after, following = at(offset + size) if offset + size < total else (None, None)
        previous = at(max(0, offset - size))[1] if offset > 0 else None
        return {"cursor": after, "next": following, "previous": previous}


def _put(body: dict, path: str, fact: str | tuple[str, Any], facts: Mapping[str, Any]) -> None:
    value = facts[fact] if isinstance(fact, str) else facts[fact[0]]
    if value is None and isinstance(fact, str):
        return
    value = fact[1] if value is None else value
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


@dataclass(frozen=True)
class Plain:
    """A route listing nothing (one record, a mutation): `handle(call)` answers or raises."""

    path: str
    route: str
    handle: Callable[[Call], Any]
    method: str = "GET"


@dataclass(frozen=True)
class Auth:
    """The credential every route of a vendor demands, else the vendor's 401. `accepted(state)`
    gives those valid now: tokens, API keys (in `header`) or basic's (user, password) pairs."""

    scheme: str  # "bearer" | "basic" | "header"
    accepted: Callable[[Any], Container[Any]]
    message: str
    header: str = "authorization"

    def check(self, headers: Headers, state: Any) -> None:
        credential = self._presented(headers.get(self.header, ""))
        if credential is None or credential not in self.accepted(state):
            raise ApiError(401, self.message)

    def _presented(self, value: str) -> str | tuple[str, str] | None:
        if self.scheme == "header":
            return value or None
        word, _, rest = value.partition(" ")
        if word.lower() != self.scheme:
            return None
        if self.scheme == "bearer":
            return rest.strip()
        try:
            user, sep, password = base64.b64decode(rest.strip()).decode().partition(":")
        except ValueError:
            return None
        return (user, password) if sep else None


@dataclass(frozen=True)
class RouteTable:
    """A vendor's routes, auth, error shape and fault messages, as its `Emulator` needs them."""

    routes: tuple[Collection | Plain, ...]
    error_body: ErrorBody
    faults: Mapping[str, str]  # "429" | "401" | "500" | "503" -> the vendor's message
    auth: Auth | None = None

    def app(self, state: Any) -> Starlette:
        routes = [Route(r.path, self._endpoint(r, state), methods=[r.method]) for r in self.routes]
        return Starlette(routes=routes)

    def _endpoint(self, route: Collection | Plain, state: Any) -> Callable:
        answer = route.serve if isinstance(route, Collection) else route.handle

        async def endpoint(request: Request) -> JSONResponse:
            try:
                if self.auth is not None:
                    self.auth.check(request.headers, state)
                call = await Call.of(request, state)
                return JSONResponse(await run_in_threadpool(answer, call))
            except ApiError as exc:
                return JSONResponse(self.error_body(exc.status, exc.message), exc.status)

        return endpoint

    @functools.cached_property
    def _patterns(self) -> list[tuple[Any, str, str]]:
        return [(compile_path(r.path)[0], r.method, r.route) for r in self.routes]

    def route_of(self, scope: Scope) -> str:
        """The knob route name of a request's route (by path, then method), else its path; a
        trailing slash is ignored, as Starlette redirects it to the route."""
        method = "GET" if scope.get("method") == "HEAD" else scope.get("method")
        path = scope["path"].rstrip("/") or "/"
        on_path = [(m, name) for regex, m, name in self._patterns if regex.match(path)]
        named = [name for m, name in on_path if m == method] + [name for _, name in on_path]
        return named[0] if named else scope["path"]

    def fault_body(self, kind: str) -> tuple[int, dict]:
        """An injected fault ("429", "401", "500", "503") in the vendor's error shape."""
        return int(kind), self.error_body(int(kind), self.faults[kind])
