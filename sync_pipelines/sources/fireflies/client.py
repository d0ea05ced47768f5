"""Fireflies GraphQL client for one connection: the shared HTTP layer plus Fireflies' error shapes.

Fireflies has no Python SDK; every call is `POST /graphql` {query, variables} with a Bearer API
key, through the `HttpSourceClient` the shared resource base builds (URL, timeout, pacing, retry
budget; Retry-After, backoff, no retry on 401/403 or other 4xx). GraphQL answers errors inside
a 200 body, so `body_error` sorts them: rate limits (`too_many_requests`) wait like a 429 (the
shared rule, with Fireflies' `retryAfter`), auth errors fail fast, server-side errors are
retried like a 5xx, anything else fails at once (it will not change) with Fireflies' message.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from pydantic import Field

from sync_pipelines import clock
from sync_pipelines.connections import Connection
from sync_pipelines.errors import (
    MalformedResponseError,
    RateLimited,
    SourceAuthError,
    SourceError,
    SourcePermanentError,
    TransientError,
)
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "fireflies"
GRAPHQL_PATH = "/graphql"
MAX_PAGE_SIZE = 50  # the `transcripts` query answers at most 50 per call
# Business and Enterprise plans: 60 requests per minute per API key (Free/Pro: 50 per day).
DOCUMENTED_RATE_PER_S = 1.0
OPERATION_HEADER = "X-Apollo-Operation-Name"  # names the operation for proxies and the sandbox

RATE_LIMIT_CODES = {"too_many_requests"}
AUTH_CODES = {
    "auth_failed",
    "unauthorized",
    "unauthenticated",
    "forbidden",
    "account_cancelled",
    "require_elevated_privilege",
}
SERVER_CODES = {"internal_server_error", "service_unavailable"}

# The whole transcript comes with the listing: `transcripts` returns the same Transcript type as
# `transcript(id)`, so one call per 50 meetings replaces 1 + 50 calls. `meeting_info` tells a
# meeting still processing (no sentences yet) from a finished one.
TRANSCRIPT_FIELDS = """
fragment TranscriptFields on Transcript {
  id
  title
  date
  dateString
  duration
  privacy
  transcript_url
  organizer_email
  host_email
  participants
  meeting_attendees { displayName email }
  sentences { index speaker_name text start_time end_time }
  summary { overview action_items keywords }
  meeting_info { summary_status }
}
"""
TRANSCRIPTS_QUERY = """
query Transcripts($fromDate: DateTime, $toDate: DateTime, $limit: Int, $skip: Int) {
  transcripts(fromDate: $fromDate, toDate: $toDate, limit: $limit, skip: $skip) {
    ...TranscriptFields
  }
}
""" + TRANSCRIPT_FIELDS
# The same listing with ids and dates only: what the daily reconciliation needs, and all it asks
# (the same operation name: proxies and the sandbox see the same `transcripts` call).
TRANSCRIPT_IDS_QUERY = """
query Transcripts($fromDate: DateTime, $toDate: DateTime, $limit: Int, $skip: Int) {
  transcripts(fromDate: $fromDate, toDate: $toDate, limit: $limit, skip: $skip) { id date }
}
"""
# One meeting by id: how a meeting that was still processing is fetched again later.
TRANSCRIPT_QUERY = """
query Transcript($id: String!) {
  transcript(id: $id) { ...TranscriptFields }
}
""" + TRANSCRIPT_FIELDS


class TranscriptNotFound(SourcePermanentError):
    """Fireflies has no transcript with the id asked for (`object_not_found`)."""


class FirefliesResource(SourceResourceBase):
    """How to talk to Fireflies; the API key and per-account options come from each connection."""

    ENV_PREFIX: ClassVar[str] = "FIREFLIES"
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.fireflies.ai"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE  # lower it if long transcripts time out
    MAX_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE

    timeout_s: float = Field(default=60.0, description="Per-request timeout (pages are large).")

    def client_for(self, connection: Connection) -> FirefliesClient:
        """The client posts to <base URL>/graphql, whether or not the URL ends in /graphql."""
        root = self.base_url_for(connection).rstrip("/").removesuffix(GRAPHQL_PATH)
        page_size = self.pages()  # a bad setting fails before the secret is read
        http = self.http_client(
            connection,
            base_url=root,
            headers={"Authorization": f"Bearer {connection.secret('api_key')}"},
            body_error=graphql_errors(f"{SOURCE} connection '{connection.id}'"),
        )
        return FirefliesClient(http, page_size)


def _iso_ms(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def date_bounds(since: float, until: float) -> dict[str, str]:
    """fromDate/toDate covering every whole millisecond of [since, until), whether Fireflies
    treats each bound as inclusive or exclusive (its reference does not say): fromDate one
    millisecond before the first, toDate one after the last. Meeting dates are whole epoch
    milliseconds, so a listing of these bounds holds every meeting dated in [since, until)."""
    first, end = math.ceil(since * 1000), math.ceil(until * 1000)
    return {"fromDate": _iso_ms(first - 1), "toDate": _iso_ms(end)}


def retry_after_s(value: Any, now: float | None = None) -> float | None:
    """Seconds to wait from a rate-limit error's `retryAfter`, whose unit Fireflies leaves open.

    Accepted: an epoch timestamp in milliseconds or seconds, an ISO-8601 date, or a delay in
    seconds (small numbers).
    """
    if value is None or isinstance(value, bool):
        return None
    now = clock.now_epoch() if now is None else now
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return max(0.0, moment.timestamp() - now)
    if number > 1e11:
        return max(0.0, number / 1000 - now)
    if number > 1e9:
        return max(0.0, number - now)
    return max(0.0, number)


class FirefliesClient(AbstractContextManager):
    """One Fireflies account: GraphQL calls and the paged `transcripts` listing."""

    def __init__(self, http: HttpSourceClient, page_size: int = MAX_PAGE_SIZE):
        self.http = http
        self.label = http.label
        self.stats = http.stats
        self.page_size = page_size
        self.pages_read = 0

    def close(self) -> None:
        self.http.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, operation: str, query: str, variables: dict[str, Any]) -> dict:
        """One GraphQL operation; returns its `data` object."""
        body = self.http.post(
            GRAPHQL_PATH,
            json={"query": query, "variables": variables, "operationName": operation},
            headers={OPERATION_HEADER: operation},
        )
        return body["data"]

    def transcripts(self, since: float, until: float) -> TranscriptPages:
        """Every meeting dated in [since, until) (epoch seconds; a few outside it may come
        too), whole transcripts, pages of the client's size (see TranscriptPages)."""
        return TranscriptPages(self, TRANSCRIPTS_QUERY, since, until, self.page_size)

    def transcript_ids(self, since: float, until: float) -> TranscriptPages:
        """The same listing with `id` and `date` only, pages of the largest size."""
        return TranscriptPages(self, TRANSCRIPT_IDS_QUERY, since, until)

    def transcripts_page(self, query: str, variables: dict) -> list[dict]:
        """One page of the `transcripts` listing, checked: a list of objects with ids."""
        page = self.query("Transcripts", query, variables).get("transcripts")
        if not isinstance(page, list):
            raise MalformedResponseError(f"{self.label}: transcripts answered {type(page)}")
        if not all(isinstance(t, dict) and t.get("id") for t in page):
            raise MalformedResponseError(f"{self.label}: a transcript without an id")
        self.pages_read += 1
        return page

    def transcript(self, meeting_id: str) -> dict | None:
        """One meeting by id; None when Fireflies no longer has it (deleted meanwhile)."""
        try:
            data = self.query("Transcript", TRANSCRIPT_QUERY, {"id": meeting_id})
        except TranscriptNotFound:
            return None
        found = data.get("transcript")
        if found is not None and not (isinstance(found, dict) and found.get("id")):
            raise MalformedResponseError(f"{self.label}: transcript answered {type(found)}")
        return found


class TranscriptPages:
    """One `transcripts` listing, iterated page by page with `skip` (offset paging in the
    GraphQL variables), each meeting once.

    Fireflies lists newest first. A meeting arriving meanwhile moves the rest one place later,
    so one comes twice (dropped); a meeting deleted meanwhile moves them one place earlier,
    which would hide one for good. So each page after the first starts one place early, on
    the last meeting the previous page held. If it does not start on a meeting already seen,
    something before it was removed and a meeting may have been skipped: the meetings read
    are still good, but `complete` is False, and a listing that proves absence must not be
    built from them.
    """

    def __init__(
        self,
        client: FirefliesClient,
        query: str,
        since: float,
        until: float,
        page_size: int = MAX_PAGE_SIZE,
    ):
        self.client = client
        self.query = query
        self.variables = {**date_bounds(since, until), "limit": page_size}
        self.page_size = page_size
        self.complete = True

    def __iter__(self) -> Iterator[dict]:
        seen: set[str] = set()
        size, skip = self.page_size, 0
        while True:
            page = self.client.transcripts_page(self.query, {**self.variables, "skip": skip})
            if skip and (not page or page[0]["id"] not in seen):
                self.complete = False
            fresh = [t for t in page if t["id"] not in seen]
            if len(page) == size and not fresh:
                raise SourceError(
                    f"{self.client.label}: transcripts paging did not advance at skip={skip}"
                )
            seen.update(t["id"] for t in fresh)
            yield from fresh
            if len(page) < size:
                return
            skip += max(1, size - 1)


# -- GraphQL errors --------------------------------------------------------------------------


def graphql_errors(label: str) -> Callable[[Any], None]:
    """The `body_error` hook: GraphQL reports errors inside a 200 body."""

    def check(body: Any) -> None:
        if not isinstance(body, dict):
            raise MalformedResponseError("GraphQL answered a non-object")
        errors = body.get("errors")
        if errors:
            raise graphql_error(errors if isinstance(errors, list) else [errors], label)
        if not isinstance(body.get("data"), dict):
            raise MalformedResponseError("GraphQL answered without data")

    return check


def graphql_error(errors: list, label: str) -> Exception:
    """The exception for a GraphQL `errors` list: rate limit > auth > server > other. A rate
    limit becomes RateLimited with Fireflies' `retryAfter`: the shared retry rule waits."""
    found = [_parse_error(e) for e in errors]
    for code, status, _, extensions in found:
        if code in RATE_LIMIT_CODES or status == 429:
            metadata = extensions.get("metadata")
            hint = metadata.get("retryAfter") if isinstance(metadata, dict) else None
            return RateLimited(retry_after_s(hint or extensions.get("retryAfter")))
    for code, status, message, _ in found:
        if code in AUTH_CODES or status in (401, 403):
            return SourceAuthError(
                f"{label}: Fireflies rejected the API key ({code or status}: "
                f"{message}); check the secret the registry names"
            )
    described = "; ".join(
        f"{message} ({code})" if code else message for code, _, message, _ in found
    )
    if all(code == "object_not_found" for code, _, _, _ in found):
        return TranscriptNotFound(f"{label}: {described}")
    if all(code in SERVER_CODES or (status or 0) >= 500 for code, status, _, _ in found):
        return TransientError(f"Fireflies server error: {described}")
    return SourcePermanentError(f"{label}: GraphQL error: {described}")


def _parse_error(error: Any) -> tuple[str, int | None, str, dict]:
    """(code, status, message, extensions) of one GraphQL error, whatever fields it has."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    extensions = error.get("extensions")
    extensions = extensions if isinstance(extensions, dict) else {}
    code = str(extensions.get("code") or error.get("code") or "").lower()
    status = extensions.get("status")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    return code, status, str(error.get("message") or code), extensions
