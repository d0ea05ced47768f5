"""Slack Web API client for one connection: slack_sdk's WebClient behind the shared retry layer."""

from __future__ import annotations

import threading
from typing import Iterator
from urllib.parse import urlsplit

from dagster import ConfigurableResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sync_pipelines.connections import Connection
from sync_pipelines.errors import TransientError, Verdict, final_error, header
from sync_pipelines.resilience import (
    CallStats,
    MalformedResponseError,
    RateLimiter,
    SourceAuthError,
    call_with_retries,
)

DEFAULT_BASE_URL = "https://slack.com/api/"

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


class _CountingRateLimitHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps Retry-After plus jitter), counting what it waits out."""

    def __init__(self, stats: CallStats, max_retry_count: int):
        super().__init__(max_retry_count=max_retry_count)
        self.stats = stats

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        self.stats.add(rate_limited=1, retries=1)
        super().prepare_for_next_attempt(
            state=state, request=request, response=response, error=error
        )


class SlackResource(ConfigurableResource):
    """How to talk to Slack; credentials and per-workspace options come from each connection."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Web API base URL; a connection's base_url overrides it (the sandbox uses this).",
    )
    timeout_s: int = Field(default=30, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=6, description="Attempts per call for 5xx/network errors.")
    max_rate_limit_retries: int = Field(default=8, description="429s waited out per call.")
    page_size: int = Field(default=999, description="History page size (Slack allows up to 999).")
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
        unknown = set(tier_limits) - set(DEFAULT_TIER_LIMITS)
        if unknown:
            raise ValueError(
                f"slack connection '{connection.id}': unknown rate tiers {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_TIER_LIMITS)}"
            )
        return SlackClient(
            connection=connection,
            token=connection.secret("token"),
            base_url=connection.base_url or self.base_url,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            max_rate_limit_retries=self.max_rate_limit_retries,
            page_size=self.page_size,
            tier_limits=tier_limits,
        )


NON_JSON_PREFIX = "Received a response in a non-JSON format: "


class SlackClient:
    """One workspace's client: paced per method tier, retried, and counted."""

    def __init__(
        self,
        *,
        connection: Connection,
        token: str,
        base_url: str,
        timeout_s: int,
        max_attempts: int,
        max_rate_limit_retries: int,
        page_size: int,
        tier_limits: dict[str, int],
    ):
        self.connection = connection
        self.stats = CallStats()
        self._token = token
        self.page_size = page_size
        self.max_attempts = max_attempts
        base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._api = urlsplit(base_url)
        self._web = WebClient(
            token=token,
            base_url=base_url,
            timeout=timeout_s,
            retry_handlers=[_CountingRateLimitHandler(self.stats, max_rate_limit_retries)],
        )
        # Slack applies its tier limits per method (per workspace), so each method gets its
        # own bucket at its tier's rate, created on first use.
        self._tier_limits = {tier: limit for tier, limit in tier_limits.items() if limit > 0}
        self._limiters: dict[str, RateLimiter] = {}
        self._limiters_lock = threading.Lock()

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

    def call(self, method: str, **params) -> dict:
        """One API call: paced, retried as `errors.classify` says, validated as a JSON object.

        429s are waited out inside slack_sdk (its handler honours Retry-After), so the retry
        layer waits out none itself.
        """
        where = f"{self._label()}: POST {self._api.path}{method} on {self._api.hostname}"

        def attempt() -> dict:
            limiter = self._limiter(method)
            if limiter is not None:
                self.stats.add(throttle_wait_s=limiter.acquire())
            self.stats.add(api_calls=1)
            try:
                data = self._web.api_call(method, params=params).data  # raises unless ok
            except SlackApiError as exc:
                known = self._known_error(where, exc)
                if known is None:
                    raise
                raise known from exc
            if not isinstance(data, dict):
                raise MalformedResponseError(f"{method} answered a non-object")
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
        cursor = None
        while True:
            page = self.call(method, **params, **({"cursor": cursor} if cursor else {}))
            items = page.get(key)
            if not isinstance(items, list):
                raise MalformedResponseError(
                    f"{self._label()}: {method} answered without a '{key}' list"
                )
            yield from items
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
