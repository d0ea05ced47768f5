"""Fathom External API v1 client for one connection: the shared HTTP layer plus Fathom's shapes.

Fathom has no SDK we rely on (fathom-python validates enums strictly and would fail on a new
value); every call is a GET with the `X-Api-Key` header through the `HttpSourceClient` the
shared resource base builds (URL, timeout, pacing at the documented 60 calls per 60 s per
key, 429 + Retry-After waited out, backoff on 5xx, no retry on 401/403).

- `GET /external/v1/meetings`: cursor paging (`cursor` in, `next_cursor` out, null on the last
  page, whose `items` may be empty); `created_after` / `created_before` are strict bounds on
  `created_at`, so a listing of [since, until) asks one second wider on both sides and the
  caller keeps what lies in the range. `include_transcript`, `include_summary` and
  `include_action_items` bring the content inline: one call per page of 10 meetings. Fathom
  chooses the page size (10): `page_size` is not sent.
- `GET /external/v1/recordings/{id}/transcript` and `/summary`: the same content per
  recording, for connections that cannot have it inline (Fathom keeps the inline fields from
  OAuth apps).

Every page is checked: an object with an `items` list (an answer without `items` and without a
next cursor is an empty last page) of meetings that each have a `recording_id` and a
`created_at`; anything else is retried as malformed, then fails the run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from sync_pipelines.connections import Connection
from sync_pipelines.errors import MalformedResponseError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import follow_cursor
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "fathom"
API_PREFIX = "/external/v1"
MEETINGS_PATH = f"{API_PREFIX}/meetings"
PAGE_SIZE = 10  # what Fathom serves per page; the API takes no page size
# "a maximum of 60 calls to the API in a 60 second window" per user (API reference).
DOCUMENTED_RATE_PER_S = 1.0
INCLUDE_ALL = ("include_transcript", "include_summary", "include_action_items")


class FathomResource(SourceResourceBase):
    """How to talk to Fathom; the API key and options come from each connection."""

    ENV_PREFIX: ClassVar[str] = "FATHOM"
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.fathom.ai"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = PAGE_SIZE
    MAX_PAGE_SIZE: ClassVar[int] = PAGE_SIZE

    def client_for(self, connection: Connection) -> FathomClient:
        """The client talks to <base URL>/external/v1, whether or not the URL ends in it."""
        root = self.base_url_for(connection).rstrip("/").removesuffix(API_PREFIX)
        self.pages()  # a bad setting fails before the secret is read
        http = self.http_client(
            connection, base_url=root, headers={"X-Api-Key": connection.secret("api_key")}
        )
        return FathomClient(http)


def iso_seconds(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_bounds(since: float, until: float) -> dict[str, str]:
    """created_after/created_before (strict, whole seconds) holding every instant of
    [since, until): one second wider on each side."""
    return {
        "created_after": iso_seconds(math.floor(since) - 1),
        "created_before": iso_seconds(math.ceil(until) + 1),
    }


def parse_time(value: Any) -> float:
    """Epoch seconds of an ISO 8601 time (`2025-03-01T17:01:30Z`); ValueError otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def created_at(meeting: Mapping[str, Any]) -> float:
    """A meeting's `created_at` in epoch seconds: what puts it in its day."""
    try:
        return parse_time(meeting.get("created_at"))
    except ValueError:
        raise MalformedResponseError(
            f"fathom meeting {meeting.get('recording_id')!r} has a malformed created_at "
            f"{meeting.get('created_at')!r}"
        ) from None


def check_page(body: Any) -> None:
    """A page of meetings: MalformedResponseError (retried) unless it has the documented shape."""
    if not isinstance(body, dict):
        raise MalformedResponseError("a meetings page that is not an object")
    items = body.get("items")
    if items is None and not body.get("next_cursor"):
        return  # an empty last page that leaves `items` out
    if not isinstance(items, list):
        raise MalformedResponseError("a meetings page without an 'items' list")
    for item in items:
        if not isinstance(item, dict) or item.get("recording_id") in (None, ""):
            raise MalformedResponseError("a meeting without a recording_id")
        created_at(item)


class FathomClient(AbstractContextManager):
    """One Fathom account: the paged meetings listing and the per-recording content."""

    def __init__(self, http: HttpSourceClient):
        self.http = http
        self.label = http.label
        self.stats = http.stats
        self.page_size = PAGE_SIZE
        self.pages_read = 0

    def close(self) -> None:
        self.http.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meetings(
        self, since: float, until: float, include: tuple[str, ...] = INCLUDE_ALL, **filters: Any
    ) -> Iterator[dict]:
        """Every meeting created in [since, until) (epoch seconds; a few a second outside it
        may come too), each page fetched as iterated; `include` names the `include_*` flags
        sent (none: metadata only, the cheapest listing). Raises on any page that fails."""
        params = {**created_bounds(since, until), **{flag: "true" for flag in include}}
        params.update({k: v for k, v in filters.items() if v is not None})

        def fetch(cursor: str | None) -> Any:
            query = dict(params, **({"cursor": cursor} if cursor else {}))
            body = self.http.get(MEETINGS_PATH, params=query, check=check_page)
            self.pages_read += 1
            return body

        return follow_cursor(
            fetch,
            items="items",
            cursor_out="next_cursor",
            where=f"{self.label}: GET {MEETINGS_PATH}",
        )

    def meeting(self, recording_id: str, created: float, include=INCLUDE_ALL) -> dict | None:
        """One meeting, found by its id in the listing of its `created_at` second (Fathom has
        no meeting-by-id route); None when Fathom no longer lists it (deleted)."""
        for meeting in self.meetings(created, created + 1, include):
            if str(meeting["recording_id"]) == str(recording_id):
                return meeting
        return None

    def transcript(self, recording_id: str) -> list | None:
        """A recording's transcript (None while Fathom is still processing it)."""
        body = self.http.get(
            f"{API_PREFIX}/recordings/{recording_id}/transcript", check=_has("transcript")
        )
        return body["transcript"]

    def summary(self, recording_id: str) -> dict | None:
        """A recording's summary {template_name, markdown_formatted} (None while processing)."""
        body = self.http.get(
            f"{API_PREFIX}/recordings/{recording_id}/summary", check=_has("summary")
        )
        return body["summary"]


def _has(key: str):
    def check(body: Any) -> None:
        if not isinstance(body, dict) or key not in body:
            raise MalformedResponseError(f"an answer without '{key}'")

    return check
