"""One HTTP client for every REST/GraphQL source without an SDK of its own (httpx underneath).

It applies the project's rules to every call: a timeout, a rate limiter shared by the
connection's threads, `Retry-After` honoured on 429 (plus jitter), exponential backoff with
full jitter on 5xx, timeouts, dropped connections and malformed bodies, no retry on 401/403,
and errors that name the source and the connection but never a credential.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from typing import Any, Callable

import httpx

from sync_pipelines import clock
from sync_pipelines.resilience import (
    CallStats,
    MalformedResponseError,
    RateLimiter,
    SourceAuthError,
    SourceError,
)

TRANSIENT_STATUS = {408, 425, 500, 502, 503, 504}


class RateLimited(Exception):
    """A 429, or an API's own rate-limit error in a 200 body (GraphQL); carries the wait."""

    def __init__(self, retry_after: float | None):
        super().__init__(f"rate limited, retry after {retry_after}")
        self.retry_after = retry_after


class _Transient(Exception):
    pass


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - clock.now_epoch()) if parsed else None


class HttpSourceClient:
    """The HTTP side of one connection of one source.

    Args:
        source, connection_id: named in every error.
        base_url: requests take paths relative to it (or absolute URLs, e.g. `next` links).
        headers/auth: credentials; they never appear in errors or logs.
        rate_per_s: client-side pacing shared by all threads of this connection (0 = off).
        body_error: optional hook inspecting a decoded 200 body; it may raise RateLimited
            (GraphQL rate-limit errors) or SourceAuthError / SourceError.
    """

    def __init__(
        self,
        *,
        source: str,
        connection_id: str,
        base_url: str,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout_s: float = 30.0,
        rate_per_s: float = 0.0,
        burst: float | None = None,
        max_attempts: int = 6,
        max_rate_limit_waits: int = 10,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 300.0,
        body_error: Callable[[Any], None] | None = None,
        stats: CallStats | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.label = f"{source} connection '{connection_id}'"
        self.stats = stats or CallStats()
        self.limiter = RateLimiter(rate=rate_per_s, per=1.0, burst=burst)
        self.max_attempts = max_attempts
        self.max_rate_limit_waits = max_rate_limit_waits
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.body_error = body_error
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpSourceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one logical request and return its decoded JSON body, retrying as needed."""
        failures = rate_waits = 0
        while True:
            try:
                return self._attempt(method, path, **kwargs)
            except RateLimited as exc:
                rate_waits += 1
                self.stats.add(rate_limited=1)
                if rate_waits > self.max_rate_limit_waits:
                    raise SourceError(
                        f"{self.label}: {method} {_path(path)} still rate limited after "
                        f"{self.max_rate_limit_waits} waits"
                    ) from exc
                wait = min(exc.retry_after if exc.retry_after is not None else 1.0,
                           self.max_retry_after_s)
                self.stats.add(retries=1, throttle_wait_s=wait)
                time.sleep(wait + random.uniform(0, 0.25))
            except _Transient as exc:
                failures += 1
                if failures >= self.max_attempts:
                    raise SourceError(
                        f"{self.label}: {method} {_path(path)} failed after "
                        f"{self.max_attempts} attempts: {exc}"
                    ) from exc.__cause__
                self.stats.add(retries=1)
                ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1))
                time.sleep(random.uniform(0, ceiling))

    def _attempt(self, method: str, path: str, **kwargs: Any) -> Any:
        self.stats.add(throttle_wait_s=self.limiter.acquire(), api_calls=1)
        try:
            response = self._client.request(method, path, **kwargs)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429:
            raise RateLimited(parse_retry_after(response.headers.get("retry-after")))
        if status in (401, 403):
            raise SourceAuthError(
                f"{self.label}: the API rejected the credentials (HTTP {status} on "
                f"{method} {_path(path)}); check the secrets the registry names"
            )
        if status in TRANSIENT_STATUS:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise SourceError(
                f"{self.label}: {method} {_path(path)} answered HTTP {status}: "
                f"{response.text[:300]}"
            )
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Transient(f"malformed JSON body ({len(response.content)} bytes)") from exc
        if self.body_error is not None:
            try:
                self.body_error(body)
            except MalformedResponseError as exc:
                raise _Transient(str(exc)) from exc
        return body


def _path(path: str) -> str:
    """The path of a URL without its query (queries can carry tokens in some APIs)."""
    return httpx.URL(path).path or path
