"""Reusable paginators over the shared HTTP client: the four ways vendors page a listing.

- `cursor_pages` (and `follow_cursor`, the same loop over any transport, e.g. an SDK): a cursor
  the answer carries (at a dotted path such as `records.cursor` or
  `paging.next.after`) and the next request sends back, in the query or in a POST body;
- `next_link_pages`: an absolute or relative URL of the next page (`metadata.next`, `next`);
- `offset_pages`: offset/limit or page/per_page, ending on an empty page or at a total;
- `page_token_pages`: `pageToken` in, `nextPageToken` out (Google style: pages may hold fewer
  items than asked for, and an empty result omits the items key altogether).

Each yields the items across every page, with no cap on the number of pages. Each page's body
is checked inside its request (a body without its items list is retried as malformed), and a
paginator refuses to loop: a cursor or link that repeats, or a link to another host (the
credentials must not follow it), fails naming the listing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from sync_pipelines.errors import MalformedResponseError, SourcePermanentError
from sync_pipelines.http import HttpSourceClient

_MISSING = object()


class PagingError(SourcePermanentError):
    """The vendor's paging cannot be followed (a repeating cursor, a link off its host)."""


def dig(body: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path of a JSON body (`records.cursor`), or `default`."""
    value = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def items_check(items: str, missing_is_empty: bool = False) -> Callable[[Any], None]:
    """A body check: MalformedResponseError unless the page has its `items` list (or, when
    `missing_is_empty`, no such key at all)."""

    def check(body: Any) -> None:
        found = dig(body, items, _MISSING)
        if found is _MISSING and missing_is_empty and isinstance(body, Mapping):
            return
        if not isinstance(found, list):
            raise MalformedResponseError(f"a page without a '{items}' list")

    return check


def _items(body: Any, items: str) -> list:
    found = dig(body, items)
    return found if isinstance(found, list) else []


class _Seen:
    """Cursors or links already followed: one coming back means the listing would loop."""

    def __init__(self, where: str):
        self.values: set[str] = set()
        self.where = where

    def add(self, value: str, kind: str) -> None:
        if value in self.values:
            raise PagingError(f"{self.where}: the {kind} {value[:80]!r} came back; stopping")
        self.values.add(value)


def follow_cursor(
    fetch: Callable[[str | None], Any],
    *,
    items: str,
    cursor_out: str,
    has_more: str | None = None,
    where: str,
) -> Iterator[Any]:
    """The cursor loop itself, for any transport (an SDK's call as much as the HTTP client):
    `fetch(cursor)` answers one page's body (None: the first page). It ends when the answer
    has no cursor or, with `has_more`, when that flag is false; a cursor that comes back fails
    naming `where` (e.g. "acme connection 'main': GET /v2/items")."""
    seen = _Seen(where)
    cursor: str | None = None
    while True:
        body = fetch(cursor)
        yield from _items(body, items)
        cursor = dig(body, cursor_out)
        more = bool(dig(body, has_more)) if has_more else bool(cursor)
        if not more:
            return
        if not cursor:
            raise MalformedResponseError(
                f"{where}: '{has_more}' is true but '{cursor_out}' is empty"
            )
        seen.add(str(cursor), "cursor")


def cursor_pages(
    client: HttpSourceClient,
    path: str,
    *,
    items: str,
    cursor_out: str,
    cursor_in: str,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    json: Mapping[str, Any] | None = None,
    has_more: str | None = None,
    missing_items_is_empty: bool = False,
) -> Iterator[Any]:
    """Items of a cursor-paged listing. The cursor goes back as query parameter `cursor_in`,
    or, when `json` is given (a POST body), as that body's field `cursor_in` (dotted paths
    allowed, e.g. `cursor` or `filter.cursor`)."""
    check = items_check(items, missing_items_is_empty)

    def fetch(cursor: str | None) -> Any:
        kwargs: dict[str, Any] = {"params": dict(params or {})}
        if json is not None:
            kwargs["json"] = _with(json, cursor_in, cursor)
        elif cursor is not None:
            kwargs["params"][cursor_in] = cursor
        return client.request(method, path, check=check, **kwargs)

    yield from follow_cursor(
        fetch,
        items=items,
        cursor_out=cursor_out,
        has_more=has_more,
        where=f"{client.label}: {method} {path}",
    )


def _with(body: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with `value` at the dotted `path` (removed when value is None)."""
    out = dict(body)
    head, _, rest = path.partition(".")
    if rest:
        out[head] = _with(out.get(head) or {}, rest, value)
    elif value is None:
        out.pop(head, None)
    else:
        out[head] = value
    return out


def next_link_pages(
    client: HttpSourceClient,
    path: str,
    *,
    items: str,
    next_link: str,
    params: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Items of a listing whose answers link to the next page (absolute or relative URL);
    the first request carries `params`, the links carry their own."""
    seen = _Seen(f"{client.label}: GET {path}")
    check = items_check(items, False)
    url, query = path, dict(params or {})
    host = client.host
    while True:
        body = client.request("GET", url, check=check, params=query or None)
        yield from _items(body, items)
        link = dig(body, next_link)
        if not link:
            return
        if httpx.URL(str(link)).host not in ("", host):
            raise PagingError(f"{seen.where}: the next page link {link} leaves {host}; stopping")
        seen.add(str(link), "next page link")
        url, query = str(link), {}


def offset_pages(
    client: HttpSourceClient,
    path: str,
    *,
    items: str,
    limit: int,
    params: Mapping[str, Any] | None = None,
    offset_param: str = "offset",
    limit_param: str = "limit",
    by_page: bool = False,
    first: int | None = None,
    total: str | None = None,
    total_pages: str | None = None,
) -> Iterator[Any]:
    """Items of an offset/limit listing (`by_page`: page/per_page, pages counted from
    `first`, default 1; offsets from `first`, default 0). It ends on an empty page, or
    when the answer's `total` items or `total_pages` pages are read; a short page alone
    does not end it (vendors may answer fewer than asked before the end)."""
    check = items_check(items, False)
    position = (1 if by_page else 0) if first is None else first
    read = pages = 0
    while True:
        query = {**(params or {}), offset_param: position, limit_param: limit}
        body = client.request("GET", path, check=check, params=query)
        page = _items(body, items)
        yield from page
        read, pages = read + len(page), pages + 1
        if not page:
            return
        if total is not None and isinstance(dig(body, total), int) and read >= dig(body, total):
            return
        last = dig(body, total_pages) if total_pages is not None else None
        if isinstance(last, int) and pages >= last:
            return
        position += 1 if by_page else len(page)


def page_token_pages(
    client: HttpSourceClient,
    path: str,
    *,
    items: str,
    params: Mapping[str, Any] | None = None,
    token_in: str = "pageToken",
    token_out: str = "nextPageToken",
) -> Iterator[Any]:
    """Items of a page-token listing; an answer without the items key is an empty page."""
    seen = _Seen(f"{client.label}: GET {path}")
    check = items_check(items, True)
    token: str | None = None
    while True:
        query = {**(params or {}), **({token_in: token} if token else {})}
        body = client.request("GET", path, check=check, params=query)
        yield from _items(body, items)
        token = dig(body, token_out)
        if not token:
            return
        seen.add(str(token), "page token")
