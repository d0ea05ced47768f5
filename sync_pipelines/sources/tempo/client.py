"""Tempo Cloud REST v4 client for one connection, on the shared HTTP client (no SDK exists)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.resilience import CallStats, MalformedResponseError, SourceError

# Tempo documents about 5 requests per second per token.
DOCUMENTED_RATE_PER_S = 5.0
MAX_PAGE_SIZE = 5000  # `limit` of GET /4/worklogs


class TempoResource(ConfigurableResource):
    """How to talk to Tempo; the token and options come from each connection."""

    base_url: str | None = Field(
        default=None,
        description="API URL (https://api.tempo.io, or https://api.eu.tempo.io) for connections "
        "without a base_url.",
    )
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    rate_per_s: float = Field(
        default=DOCUMENTED_RATE_PER_S,
        description="Client-side pacing shared by all calls of a connection; 0 disables it.",
    )
    page_size: int = Field(default=1000, description="Worklogs per page (≤5000).")
    max_attempts: int = Field(default=6, description="Attempts per call for 5xx/network errors.")

    def client_for(self, connection: Connection) -> TempoClient:
        base_url = connection.base_url or self.base_url
        if not base_url:
            raise ValueError(
                f"tempo connection '{connection.id}' has no API URL: set base_url on the "
                "connection in the registry (TEMPO_BASE_URL for the default connection) or "
                "TempoResource.base_url, e.g. https://api.tempo.io"
            )
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"TempoResource.page_size must be between 1 and {MAX_PAGE_SIZE}")
        return TempoClient(
            HttpSourceClient(
                source="tempo",
                connection_id=connection.id,
                base_url=base_url,
                headers={"Authorization": f"Bearer {connection.secret('token')}"},
                timeout_s=self.timeout_s,
                rate_per_s=self.rate_per_s,
                max_attempts=self.max_attempts,
                body_error=_check_page,
            ),
            base_url=base_url,
            page_size=self.page_size,
        )


def _check_page(body: Any) -> None:
    """A worklog page has a `results` list and a `metadata` object (else: retried)."""
    if not isinstance(body, dict):
        raise MalformedResponseError("tempo answered a non-object")
    if not isinstance(body.get("results"), list) or not isinstance(body.get("metadata"), dict):
        raise MalformedResponseError("tempo page without a results list or metadata object")


class TempoClient:
    """One connection's worklog reader."""

    def __init__(self, http: HttpSourceClient, base_url: str, page_size: int = 1000):
        self.http = http
        self.host = httpx.URL(base_url).host
        self.page_size = page_size

    @property
    def stats(self) -> CallStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()

    def worklogs(
        self,
        updated_from: float | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> Iterator[dict]:
        """Every worklog matching the filters, following `metadata.next` to the end.

        `updated_from` (epoch seconds, floored to the second) has no upper counterpart in
        Tempo's API; `date_from`/`date_to` filter the day the work was done, inclusive.
        """
        params: dict[str, Any] | None = {"offset": 0, "limit": self.page_size}
        if updated_from is not None:
            moment = datetime.fromtimestamp(int(updated_from), UTC)
            params["updatedFrom"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if date_from is not None:
            params["from"] = date_from.isoformat()
        if date_to is not None:
            params["to"] = date_to.isoformat()
        url, seen = "/4/worklogs", set()
        while True:
            page = self.http.get(url, params=params)
            yield from page["results"]
            url, params = page["metadata"].get("next"), None
            if not url:
                return
            if url in seen or httpx.URL(url).host not in ("", self.host):
                # a loop, or a link off the API host (the token must not follow it)
                raise SourceError(f"{self.http.label}: unexpected next page link {url}")
            seen.add(url)
