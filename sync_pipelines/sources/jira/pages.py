"""What a Jira listing page must hold, and where the next one starts: checked inside each
page's retried request, so a malformed or cut page is retried, then fails the listing."""

from __future__ import annotations

from typing import Any

from sync_pipelines.resilience import MalformedResponseError


def expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise MalformedResponseError(f"{what} is not a JSON {kind.__name__}")
    return value


def search_page_check(body: dict) -> None:
    """A search page that says more follow (`isLast` false) but carries no token to them is
    cut short (the token is null only on the last page)."""
    if body.get("isLast") is False and not body.get("nextPageToken"):
        raise MalformedResponseError("a search page not marked last has no nextPageToken")


def ids_page_check(body: dict) -> None:
    """An ids page whose issue lacks its id (a string, or a number) cannot say which issue
    exists."""
    search_page_check(body)
    for issue in body["issues"]:
        value = issue.get("id") if isinstance(issue, dict) else None
        if not (isinstance(value, str) and value.strip() or type(value) is int):
            raise MalformedResponseError("a search page holds an issue without an id")


def search_next(body: dict, _: str | None) -> str | None:
    return None if body.get("isLast") else body.get("nextPageToken")


def next_offset(body: dict, start: str | None) -> str | None:
    """The next `startAt` of an offset-paged answer (`isLast`), None after the last page."""
    if body.get("isLast", True) or not body["values"]:
        return None
    return str(int(start or 0) + len(body["values"]))
