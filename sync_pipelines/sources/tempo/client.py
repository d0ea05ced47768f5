"""Tempo Cloud REST v4 client for one connection, on the shared HTTP client (no SDK exists)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import next_link_pages
from sync_pipelines.resilience import CallStats, MalformedResponseError, SourceError
from sync_pipelines.sources.resource import SourceResourceBase

# Tempo documents about 5 requests per second per token.
DOCUMENTED_RATE_PER_S = 5.0
MAX_PAGE_SIZE = 5000  # `limit` of GET /4/worklogs
WORKLOGS_PATH = "/4/worklogs"


class TempoResource(SourceResourceBase):
    """How to talk to Tempo; the token and options come from each connection. Tempo has one
    API per region (https://api.tempo.io, https://api.eu.tempo.io), so there is no default."""

    ENV_PREFIX: ClassVar[str] = "TEMPO"
    BASE_URL_HINT: ClassVar[str] = "https://api.tempo.io"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = 1000
    MAX_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE

    listing_page_size: int = Field(
        default=MAX_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description="`limit` of the reconciliation's ids listing (default: Tempo's largest).",
    )

    def client_for(self, connection: Connection) -> TempoClient:
        base_url, page_size = self.base_url_for(connection), self.pages()  # before the token
        http = self.http_client(
            connection,
            base_url=base_url,
            headers={"Authorization": f"Bearer {connection.secret('token')}"},
            body_error=_check_page,
        )
        return TempoClient(http, page_size, self.listing_page_size)


def _check_page(body: Any) -> None:
    """A worklog page has a `metadata` object (else: retried); the paginator checks its
    `results` list."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        raise MalformedResponseError("tempo page without a metadata object")


def _since(epoch: float) -> str:
    """`updatedFrom`, inclusive, to the second: floored, so it never starts late."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_results(body: Any) -> None:
    """A listing page: a `results` list as long as its `metadata.count` says."""
    results = body.get("results")
    if not isinstance(results, list):
        raise MalformedResponseError("tempo page without a results list")
    count = body["metadata"].get("count")
    if count is not None and count != len(results):
        raise MalformedResponseError(f"tempo page of {len(results)} results says count={count}")


def _worklog_id(worklog: Any) -> str:
    worklog_id = worklog.get("tempoWorklogId") if isinstance(worklog, dict) else None
    if isinstance(worklog_id, bool) or not isinstance(worklog_id, (int, str)) or worklog_id == "":
        raise MalformedResponseError(f"tempo worklog without a tempoWorklogId: {worklog!r}")
    return str(worklog_id)


class TempoClient:
    """One connection's worklog reader."""

    def __init__(
        self,
        http: HttpSourceClient,
        page_size: int = TempoResource.DEFAULT_PAGE_SIZE,
        listing_page_size: int = MAX_PAGE_SIZE,
    ):
        self.http = http
        self.page_size = page_size
        self.listing_page_size = listing_page_size

    @property
    def stats(self) -> CallStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()

    def worklogs(self, updated_from: float) -> Iterator[dict]:
        """Every worklog updated since `updated_from` (epoch seconds, floored to the second),
        following `metadata.next` to the end; Tempo's API has no upper counterpart."""
        params = {"offset": 0, "limit": self.page_size, "updatedFrom": _since(updated_from)}
        return next_link_pages(
            self.http, WORKLOGS_PATH, items="results", next_link="metadata.next", params=params
        )

    def worklog_ids(self, updated_from: float) -> set[str]:
        """The id of every worklog updated since `updated_from` (as `worklogs`), in pages of
        `listing_page_size` (default the largest `limit`); raises on any page it cannot trust.

        Offset paging hides a worklog for good when one before it is deleted meanwhile (the
        rest move one place earlier), and a listing that proves absence must miss none. So
        each page after the first starts one place early, on the last worklog already read;
        if it starts elsewhere, the pages shifted and the listing raises. A page whose
        `metadata.count` is not its number of results is truncated and raises too.
        (`GET /4/worklogs/{id}` answers 404 for a deleted worklog: one call per id, so the
        listing is the cheaper proof.)"""
        since, seen, offset = _since(updated_from), set(), 0
        while True:
            params = {"updatedFrom": since, "offset": offset, "limit": self.listing_page_size}
            body = self.http.get(WORKLOGS_PATH, params=params, check=_check_results)
            page = [_worklog_id(w) for w in body["results"]]
            if offset and (not page or page[0] not in seen):
                raise SourceError(
                    f"{self.http.label}: worklogs shifted while paged (one before offset "
                    f"{offset} was deleted); one may have been skipped, nothing is listed"
                )
            fresh = set(page) - seen
            if not body["metadata"].get("next"):
                return seen | fresh
            if not fresh:
                raise SourceError(f"{self.http.label}: worklogs paging did not advance at {offset}")
            seen |= fresh
            offset += max(1, len(page) - 1)
