"""Tempo Cloud REST v4 client for one connection, on the shared HTTP client (no SDK exists)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from sync_pipelines.connections import Connection
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import next_link_pages
from sync_pipelines.resilience import CallStats, MalformedResponseError
from sync_pipelines.sources.resource import SourceResourceBase

# Tempo documents about 5 requests per second per token.
DOCUMENTED_RATE_PER_S = 5.0


class TempoResource(SourceResourceBase):
    """How to talk to Tempo; the token and options come from each connection. Tempo has one
    API per region (https://api.tempo.io, https://api.eu.tempo.io), so there is no default."""

    ENV_PREFIX: ClassVar[str] = "TEMPO"
    BASE_URL_HINT: ClassVar[str] = "https://api.tempo.io"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = 1000
    MAX_PAGE_SIZE: ClassVar[int] = 5000  # `limit` of GET /4/worklogs

    def client_for(self, connection: Connection) -> TempoClient:
        base_url, page_size = self.base_url_for(connection), self.pages()  # before the token
        http = self.http_client(
            connection,
            base_url=base_url,
            headers={"Authorization": f"Bearer {connection.secret('token')}"},
            body_error=_check_page,
        )
        return TempoClient(http, page_size)


def _check_page(body: Any) -> None:
    """A worklog page has a `metadata` object (else: retried); the paginator checks its
    `results` list."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
        raise MalformedResponseError("tempo page without a metadata object")


class TempoClient:
    """One connection's worklog reader."""

    def __init__(self, http: HttpSourceClient, page_size: int = TempoResource.DEFAULT_PAGE_SIZE):
        self.http = http
        self.page_size = page_size

    @property
    def stats(self) -> CallStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()

    def worklogs(self, updated_from: float) -> Iterator[dict]:
        """Every worklog updated since `updated_from` (epoch seconds, floored to the second),
        following `metadata.next` to the end; Tempo's API has no upper counterpart."""
        moment = datetime.fromtimestamp(int(updated_from), UTC)
        params = {
            "offset": 0,
            "limit": self.page_size,
            "updatedFrom": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return next_link_pages(
            self.http, "/4/worklogs", items="results", next_link="metadata.next", params=params
        )
