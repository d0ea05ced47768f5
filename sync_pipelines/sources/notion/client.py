"""Notion API client for one connection: the official SDK behind the shared retry layer.

The SDK's own retry is switched off (`retry=False`): it would sleep outside the connection's
rate limiter, never retries search (a POST) on 5xx, and its waits cannot be counted. Instead
every call goes through `call_with_retries`, which acts on `errors.classify`'s verdict (5xx,
timeouts and dropped connections: exponential backoff with full jitter; bodies that are not
JSON: a few retries), 429s are waited out for their `Retry-After` for the whole connection
(every thread holds off), and every request first takes a token from the connection's one
`RateLimiter`, so page readers in parallel threads share Notion's ~3 req/s. 401/403 and other
4xx fail at once with an error naming the connection and the request.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from dagster import ConfigurableResource
from notion_client import Client
from notion_client.errors import HTTPResponseError
from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import (
    SourcePermanentError,
    Verdict,
    classify,
    final_error,
    retry_after_of,
)
from sync_pipelines.http import require_json
from sync_pipelines.resilience import (
    CallStats,
    MalformedResponseError,
    RateLimiter,
    SourceAuthError,
    call_with_retries,
)

DEFAULT_BASE_URL = "https://api.notion.com"
NOTION_VERSION = "2025-09-03"
# "The rate limit for incoming requests per integration is an average of three requests per
# second. Some bursts beyond the average rate are allowed." (developers.notion.com)
DOCUMENTED_RATE_PER_S = 3.0
MAX_PAGE_SIZE = 100
_SDK_LOGGER = logging.getLogger("sync_pipelines.notion.sdk")


class NotionAccessDenied(SourceAuthError):
    """HTTP 403: the token is valid but lacks a capability or access to the object."""


class NotionObjectMissing(SourcePermanentError):
    """HTTP 404: the object was deleted or unshared from the integration (e.g. mid-run)."""


class NotionResource(ConfigurableResource):
    """How to talk to Notion; the token and base URL come from each connection."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="API root without /v1 (the SDK adds it); a connection's base_url overrides it.",
    )
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=6, description="Attempts per call for 5xx/network errors.")
    max_rate_limit_waits: int = Field(default=10, description="429s waited out per call.")
    rate_per_s: float = Field(
        default=DOCUMENTED_RATE_PER_S,
        description="Client-side pacing shared by every call of a connection; 0 disables it.",
    )
    page_size: int = Field(
        default=MAX_PAGE_SIZE,
        description=f"Search and block-children page size (1..{MAX_PAGE_SIZE}).",
    )
    max_workers: int = Field(default=4, description="Pages whose blocks are read in parallel.")
    notion_version: str = Field(default=NOTION_VERSION, description="Notion-Version header.")

    def client_for(self, connection: Connection) -> NotionClient:
        """A client for one integration token; bad settings raise ValueError naming them."""
        label = f"notion connection '{connection.id}'"
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"{label}: page_size must be 1..{MAX_PAGE_SIZE}, got {self.page_size}")
        if self.rate_per_s < 0:
            raise ValueError(f"{label}: rate_per_s must be >= 0, got {self.rate_per_s}")
        if self.max_workers < 1:
            raise ValueError(f"{label}: max_workers must be >= 1, got {self.max_workers}")
        if self.timeout_s <= 0:
            raise ValueError(f"{label}: timeout_s must be > 0, got {self.timeout_s}")
        if connection.options:
            raise ValueError(
                f"{label}: unknown options {sorted(connection.options)}; Notion takes none"
            )
        return NotionClient(
            connection_id=connection.id,
            token=connection.secret("token"),
            base_url=connection.base_url or self.base_url,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            max_rate_limit_waits=self.max_rate_limit_waits,
            rate_per_s=self.rate_per_s,
            page_size=self.page_size,
            notion_version=self.notion_version,
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
        self._paused_until = 0.0  # monotonic time before which no call goes out (Retry-After)
        self._pause_lock = threading.Lock()
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
    def search_pages(self) -> Iterator[dict]:
        """Every page shared with the integration, most recently edited first (stop any time)."""
        return self._paginate(
            "POST /v1/search",
            lambda cursor: self._sdk.search(
                filter={"property": "object", "value": "page"},
                sort={"direction": "descending", "timestamp": "last_edited_time"},
                page_size=self.page_size,
                start_cursor=cursor,
            ),
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
        cursor = None
        while True:
            body = self.call(what, lambda c=cursor: _list_body(fetch(c)))
            yield from body["results"]
            if not body["has_more"]:
                return
            cursor = body["next_cursor"]

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """One logical request: paced, 429s waited out, the rest as `errors.classify` says."""

        def attempt() -> Any:
            waits = 0
            while True:
                self._await_pause()
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
                    self._pause_for(exc, waits)

        return call_with_retries(
            attempt,
            stats=self.stats,
            describe=self._describe(what),
            max_attempts=self.max_attempts,
            max_rate_limit_waits=0,  # waited out above, for the whole connection
            backoff_s=self.backoff_s,
        )

    def _pause_for(self, exc: HTTPResponseError, waits: int) -> None:
        """A 429: every thread of the connection holds off for its Retry-After (plus jitter)."""
        retry_after = retry_after_of(exc)
        wait = retry_after if retry_after is not None else min(30.0, 2.0 ** (waits - 1))
        wait = min(wait, self.max_retry_after_s) + random.uniform(0, 0.25)
        with self._pause_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
        self.stats.add(retries=1)

    def _await_pause(self) -> None:
        with self._pause_lock:
            delay = self._paused_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)
            self.stats.add(throttle_wait_s=delay)

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
            return final_error(where, exc, verdict, attempts, [self._token])

        return describe
