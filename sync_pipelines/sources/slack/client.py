"""Slack Web API client for one connection: slack_sdk's WebClient behind the shared retry layer.

slack_sdk keeps its transport and its 429 handler, but the handler waits as the shared rule
says (`rate_limit_wait`) and holds the whole connection (every thread), not only the call that
got the 429. Pacing follows Slack's published tiers, per method.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, Iterator
from urllib.parse import urlsplit

from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sync_pipelines.connections import Connection
from sync_pipelines.errors import TransientError, Verdict, final_error, header, parse_retry_after
from sync_pipelines.paging import dig, follow_cursor, items_check
from sync_pipelines.resilience import (
    CallStats,
    MalformedResponseError,
    RateLimiter,
    SourceAuthError,
    call_with_retries,
    rate_limit_wait,
)
from sync_pipelines.sources.resource import SourceResourceBase

AUTH_ERRORS = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "ekm_access_denied",
}

# Errors Slack documents as its own trouble, which may answer with 200: worth retrying.
SERVER_ERRORS = {"internal_error", "fatal_error", "request_timeout", "service_unavailable"}

# Slack's published tiers (requests per minute per method per workspace).
METHOD_TIERS = {
    "conversations.list": "tier2",
    "conversations.members": "tier4",
    "conversations.join": "tier3",
    "conversations.history": "tier3",
    "conversations.replies": "tier3",
    "users.info": "tier4",
    "auth.test": "tier4",
}
DEFAULT_TIER_LIMITS = {"tier2": 20, "tier3": 50, "tier4": 100}


def checked_tiers(limits: dict[str, int], where: str) -> dict[str, int]:
    """Tier limits whose tiers Slack publishes; an unknown one is named with `where`."""
    unknown = set(limits) - set(DEFAULT_TIER_LIMITS)
    if unknown:
        raise ValueError(
            f"{where}unknown rate tiers {sorted(unknown)}; known: {sorted(DEFAULT_TIER_LIMITS)}"
        )
    return limits


class _SharedRuleRateLimitHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, in its place, waiting by the shared rule: the connection's
    limiter holds every thread for the wait, and this call sleeps it out there, counted."""

    def __init__(self, stats: CallStats, limiter: RateLimiter, max_retry_count: int):
        super().__init__(max_retry_count=max_retry_count)
        self.stats = stats
        self.limiter = limiter

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        if response is None:
            raise error  # type: ignore[misc]  # as slack_sdk's handler: nothing to wait out
        retry_after = parse_retry_after(header(response.headers, "retry-after"))
        self.limiter.hold(rate_limit_wait(retry_after, state.current_attempt + 1))
        self.stats.add(rate_limited=1, retries=1, throttle_wait_s=self.limiter.acquire())
        state.next_attempt_requested = True
        state.increment_current_attempt()


class SlackResource(SourceResourceBase):
    """How to talk to Slack; credentials and per-workspace options come from each connection.

    Slack documents its limits per method, in tiers (`tier_limits_per_minute`), so the shared
    `rate_per_s` (SLACK_RATE_PER_S) is only an optional cap over all of a connection's calls.
    """

    ENV_PREFIX: ClassVar[str] = "SLACK"
    DEFAULT_BASE_URL: ClassVar[str] = "https://slack.com/api/"
    DEFAULT_PAGE_SIZE: ClassVar[int] = 999  # history pages; Slack allows up to 999
    MAX_PAGE_SIZE: ClassVar[int] = 999

    max_rate_limit_waits: int = Field(
        default=8, description="429s waited out (their Retry-After) per call."
    )
    tier_limits_per_minute: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_LIMITS),
        description="Client-side pacing per Slack rate tier; 0 disables pacing for a tier.",
    )
    max_workers: int = Field(default=4, description="Channels read in parallel.")

    def client_for(self, connection: Connection) -> "SlackClient":
        """A client for one workspace; its registry options may override the tier pacing."""
        tier_limits = {
            **self.tier_limits_per_minute,
            **(connection.options.get("tier_limits_per_minute") or {}),
        }
        return SlackClient(
            connection=connection,
            resource=self,
            tier_limits=checked_tiers(tier_limits, f"slack connection '{connection.id}': "),
        )


NON_JSON_PREFIX = "Received a response in a non-JSON format: "
CURSOR = "response_metadata.next_cursor"


def _page_check(key: str) -> Callable[[Any], None]:
    """A page must hold its `key` list, and one saying `has_more` must say where the rest is:
    ending there would silently drop messages (and a listing that misses one deletes it)."""
    has_items = items_check(key)

    def check(body: Any) -> None:
        has_items(body)
        if body.get("has_more") and not dig(body, CURSOR):
            raise MalformedResponseError("a page with has_more but no next_cursor (truncated)")

    return check


class SlackClient:
    """One workspace's client: paced per method tier, retried, and counted."""

    def __init__(
        self, *, connection: Connection, resource: SlackResource, tier_limits: dict[str, int]
    ):
        self.connection = connection
        self.stats = CallStats()
        self._token = connection.secret("token")
        self.page_size = resource.pages()
        self.max_attempts = resource.max_attempts
        base_url = resource.base_url_for(connection)
        base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._api = urlsplit(base_url)
        # Every call of the connection passes here: the optional overall pace, and a 429's hold.
        self._connection_limiter = RateLimiter(rate=resource.pace())
        handler = _SharedRuleRateLimitHandler(
            self.stats, self._connection_limiter, resource.max_rate_limit_waits
        )
        self._web = WebClient(
            token=self._token,
            base_url=base_url,
            timeout=resource.checked_timeout(),
            retry_handlers=[handler],
        )
        # Slack applies its tier limits per method (per workspace), so each method gets its
        # own bucket at its tier's rate, created on first use.
        self._tier_limits = {tier: limit for tier, limit in tier_limits.items() if limit > 0}
        self._limiters: dict[str, RateLimiter] = {}
        self._limiters_lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release: slack_sdk's WebClient opens a connection per request."""

    def _limiter(self, method: str) -> RateLimiter | None:
        limit = self._tier_limits.get(METHOD_TIERS.get(method, "tier3"))
        if limit is None:
            return None
        with self._limiters_lock:
            if method not in self._limiters:
                self._limiters[method] = RateLimiter(rate=limit, per=60.0, burst=max(1, limit // 6))
            return self._limiters[method]

    def _label(self) -> str:
        return f"slack connection '{self.connection.id}'"

    def call(self, method: str, check: Callable[[Any], None] | None = None, **params) -> dict:
        """One API call: paced, retried as `errors.classify` says, validated as a JSON object
        (and by `check`, e.g. a page's items list: a failed check is retried as malformed).

        429s are waited out inside slack_sdk (its handler, by the shared rule), so the retry
        layer waits out none itself.
        """
        where = f"{self._label()}: POST {self._api.path}{method} on {self._api.hostname}"

        def attempt() -> dict:
            waited = self._connection_limiter.acquire()
            limiter = self._limiter(method)
            if limiter is not None:
                waited += limiter.acquire()
            self.stats.add(throttle_wait_s=waited, api_calls=1)
            try:
                data = self._web.api_call(method, params=params).data  # raises unless ok
            except SlackApiError as exc:
                known = self._known_error(where, exc)
                if known is None:
                    raise
                raise known from exc
            if not isinstance(data, dict):
                raise MalformedResponseError(f"{method} answered a non-object")
            if check is not None:
                check(data)
            return data

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> BaseException:
            return final_error(where, exc, verdict, attempts, [self._token])

        return call_with_retries(
            attempt,
            stats=self.stats,
            describe=describe,
            max_attempts=self.max_attempts,
            max_rate_limit_waits=0,
        )

    def _known_error(self, where: str, exc: SlackApiError) -> Exception | None:
        """What Slack's `error` says that its status cannot (Slack answers most errors with
        200): a rejected token, a server-side error, a 2xx body that is not JSON. None: the
        status decides."""
        response = exc.response
        error = str(response.get("error") or "") if response is not None else ""
        if error in AUTH_ERRORS:
            return SourceAuthError(
                f"{where}: Slack rejected the credentials ({error}); check the token named "
                "by the registry"
            )
        if error in SERVER_ERRORS:
            return TransientError(f"Slack answered {error}")
        status = getattr(response, "status_code", None)
        if error.startswith(NON_JSON_PREFIX) and status is not None and 200 <= status < 300:
            return MalformedResponseError(
                "the body is not JSON",
                status=status,
                content_type=header(getattr(response, "headers", None), "content-type"),
                body=error.removeprefix(NON_JSON_PREFIX),
            )
        return None

    def paginate(self, method: str, key: str, **params) -> Iterator[dict]:
        """Every item of `key` across cursor pages (no fixed cap on the number of pages)."""
        check = _page_check(key)

        def page(cursor: str | None) -> dict:
            return self.call(method, check, **params, **({"cursor": cursor} if cursor else {}))

        return follow_cursor(
            page,
            items=key,
            cursor_out=CURSOR,
            where=f"{self._label()}: {method}",
        )
