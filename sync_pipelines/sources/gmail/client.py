"""Gmail API v1 client for one mailbox: the shared HTTP layer, paced by Gmail's quota units.

Every call goes through `HttpSourceClient` (timeouts, retries with jitter, Retry-After on 429,
no retry on auth errors) with google-auth tokens (auth.py). What Gmail does differently:

- Quota is counted in units per user (250 units/s, a moving average: messages.get, .list and
  attachments.get cost 5, history.list 2, labels.list and getProfile 1), so the connection's
  limiter is filled in units, not requests: `rate_per_s` (GMAIL_RATE_PER_S) counts units.
  messages.get runs `max_workers` at a time, all drawing on that one limiter.
- A rate limit comes as 429 or as 403 with reason `rateLimitExceeded` or
  `userRateLimitExceeded`: both are waited out and retried (backoff when no Retry-After).
  Every other 403 (insufficient permission, delegation denied, daily limit) fails at once.
- A 404 on history.list means the stored historyId is older than the history Gmail keeps
  (`HistoryExpired`: the sync falls back to a full re-list); a 404 on messages.get means the
  message was deleted meanwhile (`MessageGone`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import RateLimited, SourcePermanentError, parse_retry_after
from sync_pipelines.http import HttpSourceClient, HttpStatusError
from sync_pipelines.paging import PagingError, items_check, page_token_pages
from sync_pipelines.resilience import CallStats, MalformedResponseError, RateLimiter
from sync_pipelines.sources.gmail.auth import GOOGLE_TOKEN_URI, GoogleAuth, credentials_for
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "gmail"
USER = "/gmail/v1/users/me"
QUOTA_UNITS_PER_S = 250.0  # per user, moving average (Gmail's usage limits)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def units_of(path: str) -> int:
    """Quota units one call costs (Gmail's per-method table)."""
    if "/attachments/" in path:
        return 5
    if path.endswith("/history"):
        return 2
    if path.endswith(("/labels", "/profile")):
        return 1
    return 5  # messages.list, messages.get


class HistoryExpired(SourcePermanentError):
    """history.list answered 404: the startHistoryId is older than Gmail's history."""


class MessageGone(SourcePermanentError):
    """messages.get answered 404: the message no longer exists."""


def error_reasons(body: bytes) -> set[str]:
    """The `reason`s of a Google error body ({"error": {"errors": [{"reason"}]}})."""
    try:
        error = json.loads(body or b"{}").get("error")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(error, dict):
        return set()
    found = {e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)}
    return {r for r in found if isinstance(r, str)}


class GmailHttp(HttpSourceClient):
    """The shared client with Gmail's quota pacing and error reasons (module docstring)."""

    def __init__(self, *, units_per_s: float, **settings: Any):
        super().__init__(**{**settings, "rate_per_s": 0})
        self.units = RateLimiter(rate=units_per_s, per=1.0)

    def _attempt(self, request, check):
        waited = sum(self.units.acquire() for _ in range(units_of(request.url.path)))
        self.stats.add(throttle_wait_s=waited)
        try:
            return super()._attempt(request, check)
        except HttpStatusError as exc:
            path = request.url.path
            if exc.status_code == 403 and error_reasons(exc.body) & RATE_LIMIT_REASONS:
                retry_after = parse_retry_after(exc.headers.get("retry-after"))
                if retry_after is not None:  # the quota is the mailbox's: every thread waits
                    self.units.hold(retry_after)
                raise RateLimited(retry_after) from None
            if exc.status_code == 404 and path.endswith("/history"):
                raise HistoryExpired(
                    f"{self.label}: history.list answered 404: the stored historyId is older "
                    "than the history Gmail keeps"
                ) from None
            if exc.status_code == 404 and "/messages/" in path and "/attachments/" not in path:
                raise MessageGone(f"{self.label}: message {path.rsplit('/', 1)[-1]} is gone")
            raise


class GmailResource(SourceResourceBase):
    """How to talk to Gmail; each connection is one mailbox with its own credentials."""

    ENV_PREFIX: ClassVar[str] = "GMAIL"
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://gmail.googleapis.com"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = QUOTA_UNITS_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = 100
    MAX_PAGE_SIZE: ClassVar[int] = 500

    rate_per_s: float | None = Field(
        default=None,
        description="Gmail quota units per second per mailbox (0 = off); unset: "
        "GMAIL_RATE_PER_S, else Gmail's 250 units/s per user.",
    )
    max_workers: int = Field(default=8, description="messages.get calls in flight per mailbox.")
    token_uri: str | None = Field(
        default=None,
        description="OAuth token endpoint; unset: the connection option token_uri, "
        "GMAIL_TOKEN_URI, else Google's.",
    )

    def token_uri_for(self, connection: Connection) -> str:
        return (
            connection.options.get("token_uri")
            or self.token_uri
            or os.environ.get("GMAIL_TOKEN_URI")
            or GOOGLE_TOKEN_URI
        )

    def client_for(self, connection: Connection) -> GmailClient:
        page_size = self.pages()  # configuration errors come before the secret is read
        if self.max_workers < 1:
            raise ValueError(f"GmailResource.max_workers must be >= 1, got {self.max_workers}")
        label = f"{SOURCE} connection '{connection.id}'"
        mailbox = connection.options.get("mailbox")
        credentials = credentials_for(connection, self.token_uri_for(connection), mailbox)
        auth = GoogleAuth(credentials, label)
        http = GmailHttp(
            units_per_s=self.pace(),
            source=SOURCE,
            connection_id=connection.id,
            base_url=self.base_url_for(connection),
            auth=auth,
            timeout_s=self.checked_timeout(),
            max_attempts=self.max_attempts,
            max_rate_limit_waits=self.max_rate_limit_waits,
        )
        return GmailClient(http, page_size, self.max_workers)


def decode_data(data: str | None) -> bytes:
    """Gmail's base64url body data, padded or not."""
    if not data:
        return b""
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (ValueError, TypeError):
        raise MalformedResponseError("a body whose data is not base64url") from None


def _message_check(body: Any) -> None:
    if not isinstance(body, dict) or not body.get("id") or "internalDate" not in body:
        raise MalformedResponseError("a message without id or internalDate")


class GmailClient:
    """One mailbox: its profile, labels, message listings, history and messages."""

    def __init__(self, http: GmailHttp, page_size: int = 100, max_workers: int = 8):
        self.http = http
        self.page_size = page_size
        self.max_workers = max_workers
        self.label = http.label

    @property
    def stats(self) -> CallStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()

    def profile(self) -> dict:
        """{emailAddress, historyId, ...}: the owner and the mailbox's current history id."""
        body = self.http.get(f"{USER}/profile")
        if not isinstance(body, dict) or not body.get("emailAddress") or not body.get("historyId"):
            raise MalformedResponseError(f"{self.label}: a profile without address or historyId")
        return body

    def labels(self) -> list[dict]:
        body = self.http.get(f"{USER}/labels", check=items_check("labels", True))
        return [label for label in body.get("labels") or [] if isinstance(label, dict)]

    def message_ids(
        self, after: int, before: int, label_id: str | None = None, page_size: int | None = None
    ) -> Iterator[dict]:
        """{id, threadId} of every message whose date lies in (after, before) epoch seconds
        (Gmail's `after:`/`before:`), optionally only those with `label_id`; SPAM and TRASH
        are left out, as messages.list does by default."""
        params: dict[str, Any] = {
            "q": f"after:{after} before:{before}",
            "maxResults": page_size or self.page_size,
        }
        if label_id:
            params["labelIds"] = label_id
        return page_token_pages(self.http, f"{USER}/messages", items="messages", params=params)

    def history(self, start_history_id: str) -> tuple[list[dict], str]:
        """Every history record after `start_history_id`, across pages, and the mailbox's
        current historyId (the next start). HistoryExpired when Gmail no longer has it."""
        records: list[dict] = []
        params: dict[str, Any] = {"startHistoryId": start_history_id, "maxResults": 500}
        seen: set[str] = set()
        latest = start_history_id
        check = items_check("history", True)
        while True:
            body = self.http.get(f"{USER}/history", params=params, check=check)
            records.extend(r for r in body.get("history") or [] if isinstance(r, dict))
            latest = str(body.get("historyId") or latest)
            token = body.get("nextPageToken")
            if not token:
                return records, latest
            if token in seen:
                raise PagingError(f"{self.label}: history.list page token came back; stopping")
            seen.add(token)
            params = {**params, "pageToken": token}

    def message(self, message_id: str) -> dict | None:
        """messages.get format=full; None when the message no longer exists."""
        try:
            return self.http.get(
                f"{USER}/messages/{message_id}", params={"format": "full"}, check=_message_check
            )
        except MessageGone:
            return None

    def messages(self, message_ids: Iterable[str]) -> Iterator[tuple[str, dict | None]]:
        """(id, message or None) for each id, `max_workers` requests in flight, in order."""
        ids = list(message_ids)
        if self.max_workers <= 1 or len(ids) <= 1:
            yield from ((i, self.message(i)) for i in ids)
            return
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            yield from zip(ids, pool.map(self.message, ids))

    def attachment(self, message_id: str, attachment_id: str) -> bytes:
        body = self.http.get(f"{USER}/messages/{message_id}/attachments/{attachment_id}")
        if not isinstance(body, dict) or "data" not in body:
            raise MalformedResponseError(f"{self.label}: an attachment without data")
        return decode_data(body.get("data"))
