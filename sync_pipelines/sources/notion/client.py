"""Notion API client for one connection: the official SDK behind the shared retry layer.

The SDK's own retry is switched off (`retry=False`): it would sleep outside the connection's
rate limiter, never retries search (a POST) on 5xx, and its waits cannot be counted. Instead
every call goes through `call_with_retries`, which acts on `errors.classify`'s verdict (5xx,
timeouts and dropped connections: exponential backoff with full jitter; bodies that are not
JSON: a few retries), 429s are waited out by the shared rule (`resilience.rate_limit_wait`)
as a hold on the connection's one `RateLimiter` (every thread holds off), and every request
first takes a token from that limiter, so page readers in parallel threads share Notion's
~3 req/s. Lists follow `next_cursor` with `paging.follow_cursor`. 401/403 and other 4xx fail
at once with an error naming the connection and the request; a 404 is `NotionObjectMissing`,
which the sync turns into a tombstone where it reads a page (sync.py) and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
from notion_client import Client
from notion_client.errors import HTTPResponseError
from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import (
    MalformedResponseError,
    SourceAuthError,
    SourcePermanentError,
    Verdict,
    classify,
    final_error,
    retry_after_of,
)
from sync_pipelines.http import require_json
from sync_pipelines.paging import follow_cursor
from sync_pipelines.resilience import CallStats, RateLimiter, call_with_retries, rate_limit_wait
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.resource import SourceResourceBase

DEFAULT_BASE_URL = "https://api.notion.com"
NOTION_VERSION = "2025-09-03"
# "The rate limit for incoming requests per integration is an average of three requests per
# second. Some bursts beyond the average rate are allowed." (developers.notion.com)
DOCUMENTED_RATE_PER_S = 3.0
MAX_PAGE_SIZE = 100
_SDK_LOGGER = logging.getLogger("sync_pipelines.notion.sdk")


class NotionAccessDenied(SourceAuthError):
    """HTTP 403: the token is valid but lacks a capability or access to the object."""


class NotionRequestRefused(SourcePermanentError):
    """Notion refused the request itself (HTTP 400 validation_error): e.g. a search filter
    this API version does not know."""


class NotionObjectMissing(SourcePermanentError):
    """HTTP 404: the object was deleted or unshared from the integration (e.g. mid-run)."""


class NotionOptions(OptionsModel):
    """A Notion connection takes no options: it reads every page shared with the integration."""


class NotionResource(SourceResourceBase):
    """How to talk to Notion; the token and base URL come from each connection. `base_url` is
    the API root without /v1 (the SDK adds it)."""

    ENV_PREFIX: ClassVar[str] = "NOTION"
    DEFAULT_BASE_URL: ClassVar[str] = DEFAULT_BASE_URL
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE
    MAX_PAGE_SIZE: ClassVar[int] = MAX_PAGE_SIZE

    max_workers: int = Field(default=4, description="Pages whose blocks are read in parallel.")
    notion_version: str = Field(default=NOTION_VERSION, description="Notion-Version header.")

    def client_for(self, connection: Connection) -> NotionClient:
        """A client for one integration token; bad settings raise ValueError naming them."""
        label = f"notion connection '{connection.id}'"
        if self.max_workers < 1:
            raise ValueError(f"{label}: max_workers must be >= 1, got {self.max_workers}")
        try:
            NotionOptions.from_connection(connection.options, "notion")
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        return NotionClient(
            connection_id=connection.id,
            base_url=self.base_url_for(connection),
            timeout_s=self.checked_timeout(),
            max_attempts=self.max_attempts,
            max_rate_limit_waits=self.max_rate_limit_waits,
            rate_per_s=self.pace(),
            page_size=self.pages(),
            notion_version=self.notion_version,
            token=connection.secret("token"),
        )


def _list_body(body: Any) -> dict:
    """A Notion list: `results` plus `has_more` and, when there is more, `next_cursor`."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise MalformedResponseError("a list without results")
    if not isinstance(body.get("has_more"), bool):
        raise MalformedResponseError("a list without has_more")
    if body["has_more"] and not body.get("next_cursor"):
        raise MalformedResponseError("a list with has_more but no next_cursor")
    return body


def _page_body(body: Any) -> dict:
    if not isinstance(body, dict) or body.get("object") != "page" or not body.get("id"):
        raise MalformedResponseError("a page answer that is not a page object")
    return body


class NotionClient:
    """One integration's client: paced, retried, counted; lists are paged to the end."""

    def __init__(
        self,
        *,
        connection_id: str,
        token: str,
        base_url: str,
        timeout_s: float = 30.0,
        max_attempts: int = 6,
        max_rate_limit_waits: int = 10,
        rate_per_s: float = DOCUMENTED_RATE_PER_S,
        page_size: int = MAX_PAGE_SIZE,
        notion_version: str = NOTION_VERSION,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 300.0,
    ):
        self.label = f"notion connection '{connection_id}'"
        self.host = httpx.URL(base_url).host
        self.stats = CallStats()
        self._token = token
        # burst=1: no more than the documented average in any window, even right at the start
        self.limiter = RateLimiter(rate=rate_per_s, per=1.0, burst=1)
        self.page_size = page_size
        self.max_attempts = max_attempts
        self.max_rate_limit_waits = max_rate_limit_waits
        self.backoff_s = backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._sdk = Client(
            # A 2xx that is not JSON (a proxy's login page) fails with its status and first bytes.
            client=httpx.Client(event_hooks={"response": [require_json]}),
            auth=token,
            base_url=base_url.rstrip("/").removesuffix("/v1"),
            timeout_ms=int(timeout_s * 1000),
            notion_version=notion_version,
            retry=False,
            logger=_SDK_LOGGER,
        )

    def close(self) -> None:
        self._sdk.close()

    def __enter__(self) -> NotionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the listings a sync reads ---------------------------------------------------------------
    def search_pages(self, in_trash: bool = False) -> Iterator[dict]:
        """Every page shared with the integration, most recently edited first (stop any time).
        Search leaves trashed pages out; `in_trash` asks for those only (`filter.in_trash`)."""
        pages: dict[str, Any] = {"property": "object", "value": "page"}
        if in_trash:
            pages["in_trash"] = True
        return self._paginate(
            "POST /v1/search" + (" (trash)" if in_trash else ""),
            lambda cursor: self._sdk.search(
                filter=pages,
                sort={"direction": "descending", "timestamp": "last_edited_time"},
                page_size=self.page_size,
                start_cursor=cursor,
            ),
        )

    def retrieve_page(self, page_id: str) -> dict:
        """The page object, trashed or not; NotionObjectMissing when it was deleted or is no
        longer shared with the integration."""
        return self.call(
            f"GET /v1/pages/{page_id}", lambda: _page_body(self._sdk.pages.retrieve(page_id))
        )

    def block_children(self, block_id: str) -> Iterator[dict]:
        """Every child block of a page or block, across pages of children."""
        return self._paginate(
            f"GET /v1/blocks/{block_id}/children",
            lambda cursor: self._sdk.blocks.children.list(
                block_id, page_size=self.page_size, start_cursor=cursor
            ),
        )

    def user_names(self) -> dict[str, str]:
        """User id -> name for the workspace, or {} if the integration may not read users."""
        try:
            return {
                user["id"]: user.get("name") or user["id"]
                for user in self._paginate(
                    "GET /v1/users",
                    lambda cursor: self._sdk.users.list(
                        page_size=MAX_PAGE_SIZE, start_cursor=cursor
                    ),
                )
                if isinstance(user, dict) and user.get("id")
            }
        except NotionAccessDenied:
            return {}

    # -- plumbing ----------------------------------------------------------------------------
    def _paginate(self, what: str, fetch: Callable[[str | None], Any]) -> Iterator[dict]:
        """A list's items to its end: each page one call, checked inside it (so retried)."""
        return follow_cursor(
            lambda cursor: self.call(what, lambda: _list_body(fetch(cursor))),
            items="results",
            cursor_out="next_cursor",
            has_more="has_more",
            where=f"{self.label}: {what}",
        )

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """One logical request: paced, 429s waited out, the rest as `errors.classify` says."""

        def attempt() -> Any:
            waits = 0
            while True:
                self.stats.add(throttle_wait_s=self.limiter.acquire(), api_calls=1)
                try:
                    return fn()
                except HTTPResponseError as exc:
                    if classify(exc) is not Verdict.RATE_LIMITED:
                        raise
                    self.stats.add(rate_limited=1)
                    if waits >= self.max_rate_limit_waits:
                        raise
                    waits += 1
                    # The Retry-After holds every thread of the connection, not just this one.
                    wait = rate_limit_wait(
                        retry_after_of(exc), waits, max_retry_after_s=self.max_retry_after_s
                    )
                    self.limiter.hold(wait)
                    self.stats.add(retries=1)

        return call_with_retries(
            attempt,
            stats=self.stats,
            describe=self._describe(what),
            max_attempts=self.max_attempts,
            max_rate_limit_waits=0,  # waited out above, for the whole connection
            backoff_s=self.backoff_s,
        )

    def _describe(self, what: str) -> Callable[[BaseException, Verdict, int], BaseException]:
        where = f"{self.label}: {what} on {self.host}"

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> BaseException:
            if isinstance(exc, HTTPResponseError) and exc.status in (403, 404):
                code = getattr(exc.code, "value", exc.code)
                if exc.status == 403:
                    return NotionAccessDenied(
                        f"{where}: Notion denied it (HTTP 403 {code}); share the pages with "
                        "the integration or grant it the capability"
                    )
                return NotionObjectMissing(f"{where}: not found (HTTP 404 {code})")
            if isinstance(exc, HTTPResponseError) and exc.status == 400:
                code = getattr(exc.code, "value", exc.code)
                return NotionRequestRefused(f"{where}: refused (HTTP 400 {code})")
            return final_error(where, exc, verdict, attempts, [self._token])

        return describe
