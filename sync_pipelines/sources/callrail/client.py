"""CallRail API v3 client for one connection, on the shared HTTP client (no official SDK).

What the reference (apidocs.callrail.com) documents and this client follows:
- auth `Authorization: Token token="KEY"`; every path under `/v3/a/{account_id}/`;
- listings filtered by `start_date`/`end_date` (ISO 8601, both inclusive: a call's start time,
  a form's submission time, a conversation's last message). No listing filters on an updated
  time, so the tables re-read a lookback (tables.py);
- calls with relative pagination (`relative_pagination=true`: `has_next_page`, `next_page`,
  recommended for calls), the others with offset pagination (`page` from 1, `per_page` ≤ 250,
  `total_pages`); sorted oldest first so records arriving meanwhile land after the last page;
- 1,000 requests an hour and 10,000 a day per account, answered 429 without a Retry-After:
  the client paces itself at the hourly rate (a backfill never exhausts the hour), counts every
  request against the account's daily cap in a ledger all runs share (quota.py: it waits for a
  slot freeing within `daily_wait_s`, else fails at once saying when the budget frees), and
  waits a 429 out with the shared backoff, capped at 2 minutes a wait.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field

from sync_pipelines.connections import Connection, CredentialError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import PagingError
from sync_pipelines.resilience import CallStats, MalformedResponseError
from sync_pipelines.resources import default_data_dir
from sync_pipelines.sources.callrail.quota import DAILY_LIMIT, BudgetedTransport, DailyBudget
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "callrail"
DOCUMENTED_RATE_PER_S = 1000 / 3600  # 1,000 requests an hour per account (and 10,000 a day)
MAX_PAGE_SIZE = 250
RETENTION_S = 25 * 30 * 86_400  # records are kept 25 months; older ranges are refused
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
CALL_FIELDS = (
    "company_id", "company_name", "created_at", "lead_status", "note", "tags", "source",
    "value", "transcription", "person_id", "tracker_id", "timeline_url", "medium", "campaign",
)  # fmt: skip
Page = list[dict[str, Any]]


class CallRailResource(SourceResourceBase):
    """How to talk to CallRail; the API key and the account id come from each connection."""

    ENV_PREFIX: ClassVar[str] = "CALLRAIL"
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.callrail.com"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = 200
    MAX_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE

    daily_limit: int | None = Field(
        default=None,
        description="Requests per account per rolling 24 h (0 = not budgeted); unset: "
        "CALLRAIL_DAILY_LIMIT, else CallRail's 10,000.",
    )
    daily_wait_s: float = Field(
        default=120.0,
        description="Longest wait for the daily budget to free a slot before the run fails.",
    )
    budget_dir: str | None = Field(
        default=None,
        description="Folder of the per-account daily ledgers; unset: <data dir>/callrail.",
    )

    def daily_budget(self, connection: Connection, account: str) -> DailyBudget | None:
        """The account's daily budget (None when off), shared by every run through its file."""
        limit = self.daily_limit
        if limit is None:
            text = os.environ.get("CALLRAIL_DAILY_LIMIT") or str(DAILY_LIMIT)
            limit = int(text) if text.isdigit() else -1
        if limit < 0:
            raise ValueError(f"the CallRail daily limit must be a whole number >= 0, got {limit}")
        if limit == 0:
            return None
        folder = Path(self.budget_dir or Path(default_data_dir()) / "callrail")
        return DailyBudget(
            folder / f"daily_budget_{account}.json",
            limit,
            self.daily_wait_s,
            label=f"{SOURCE} connection '{connection.id}' (account {account})",
        )

    def client_for(self, connection: Connection) -> CallRailClient:
        page_size = self.pages() if self.page_size is not None else None
        account = account_id(connection)
        budget = self.daily_budget(connection, account)
        key = connection.secret("api_key")
        http = self.http_client(
            connection,
            headers={"Authorization": f'Token token="{key}"'},
            max_backoff_s=120.0,  # CallRail's 429 has no Retry-After: wait longer than 30 s
            **({"transport": BudgetedTransport(budget)} if budget else {}),
        )
        return CallRailClient(http, account, page_size, budget)


def account_id(connection: Connection) -> str:
    """The connection's account: option `account_id`, else its `account_id` credential."""
    value = (connection.options or {}).get("account_id")
    if not value and "account_id" in connection.credentials:
        value = connection.secret("account_id")
    if not value:
        raise CredentialError(
            f"{SOURCE} connection '{connection.id}' has no account id: set the option "
            "account_id or the credential account_id (CALLRAIL_ACCOUNT_ID), e.g. ACC8154..."
        )
    if not ACCOUNT_ID.match(str(value)):
        raise ValueError(
            f"{SOURCE} connection '{connection.id}': account_id must be letters and digits "
            f"(e.g. ACC8154748ae6bd4e278a7cddd38a662f4f), got {str(value)[:80]!r}"
        )
    return str(value)


def iso(epoch: float) -> str:
    """A `start_date`/`end_date` value: UTC, explicit offset, to the second."""
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def epoch_of(value: Any, what: str) -> float:
    """A CallRail time (ISO 8601 with an offset, e.g. 2026-11-18T09:30:00.000-05:00)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponseError(f"{SOURCE}: {what} is not an ISO 8601 time: {value!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _listed(key: str):
    def check(body: Any) -> None:
        if not isinstance(body, Mapping) or not isinstance(body.get(key), list):
            raise MalformedResponseError(f"{SOURCE}: a page without a '{key}' list")

    return check


class CallRailClient:
    """One account's listings, page by page (the tables stream pages into the warehouse)."""

    def __init__(
        self,
        http: HttpSourceClient,
        account: str,
        page_size: int | None,
        budget: DailyBudget | None = None,
    ):
        self.http = http
        self.account = account
        self.page_size = page_size  # the resource's own setting; None: the CRM page size
        self.budget = budget  # the account's daily cap, counted by the HTTP transport
        self.pages_read = 0

    @property
    def stats(self) -> CallStats:
        return self.http.stats

    @property
    def label(self) -> str:
        return self.http.label

    def close(self) -> None:
        self.http.close()

    def path(self, name: str) -> str:
        return f"/v3/a/{self.account}/{name}.json"

    def per_page(self, wanted: int) -> int:
        return max(1, min(self.page_size or wanted, MAX_PAGE_SIZE))

    def _range(self, start: float, end: float) -> dict[str, str]:
        return {"start_date": iso(start), "end_date": iso(end)}

    def calls(
        self, start: float, end: float, per_page: int, fields: tuple[str, ...] = CALL_FIELDS
    ) -> Iterator[Page]:
        """Pages of the calls that started in [start, end] (relative pagination)."""
        params = {
            **self._range(start, end),
            "relative_pagination": "true",
            "per_page": self.per_page(per_page),
            "sort": "start_time",
            "order": "asc",
            **({"fields": ",".join(fields)} if fields else {}),
        }
        yield from self._relative(self.path("calls"), "calls", params)

    def form_submissions(self, start: float, end: float, per_page: int) -> Iterator[Page]:
        params = {**self._range(start, end), "sort": "submitted_at", "order": "asc"}
        yield from self._offset(self.path("form_submissions"), "form_submissions", params, per_page)

    def conversations(self, start: float, end: float, per_page: int) -> Iterator[Page]:
        """Text-message conversations whose last message lies in [start, end]."""
        params = {**self._range(start, end), "sort": "last_message_at", "order": "asc"}
        yield from self._offset(self.path("text-messages"), "conversations", params, per_page)

    def _offset(self, path: str, key: str, params: dict, per_page: int) -> Iterator[Page]:
        """Offset pagination: pages from 1 until `total_pages` (or an empty page; a short page
        alone does not end it)."""
        page, size = 1, self.per_page(per_page)
        while True:
            body = self.http.get(
                path, check=_listed(key), params={**params, "page": page, "per_page": size}
            )
            self.pages_read += 1
            items = body[key]
            if items:
                yield items
            total = body.get("total_pages")
            if not items or (isinstance(total, int) and page >= total):
                return
            page += 1

    def _relative(self, path: str, key: str, params: dict) -> Iterator[Page]:
        """Relative pagination: follow `next_page` while `has_next_page` (a link to the next
        page; an offset number is accepted too). A link that repeats or leaves the API's host
        stops the listing with an error rather than loop or leak the key."""
        seen: set[str] = set()
        url, query = path, dict(params)
        where = f"{self.label}: GET {path}"
        while True:
            # httpx replaces a link's own query with any params given, even empty ones.
            body = self.http.get(url, check=_listed(key), params=query or None)
            self.pages_read += 1
            if body[key]:
                yield body[key]
            if not body.get("has_next_page"):
                return
            following = body.get("next_page")
            if following in (None, ""):
                raise MalformedResponseError(f"{where}: has_next_page is true without next_page")
            if isinstance(following, int) and not isinstance(following, bool):
                url, query = path, {**params, "offset": following}
                marker = f"offset={following}"
            else:
                link = str(following)
                if httpx.URL(link).host not in ("", self.http.host):
                    raise PagingError(f"{where}: next_page {link} leaves {self.http.host}")
                url, query, marker = link, {}, link
            if marker in seen:
                raise PagingError(f"{where}: next_page {marker[:80]!r} came back; stopping")
            seen.add(marker)
