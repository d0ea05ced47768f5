"""One HTTP client for every REST/GraphQL source without an SDK of its own (httpx underneath).

It applies the project's rules to every call: a timeout, a rate limiter shared by the
connection's threads, and `resilience.call_with_retries` acting on `errors.classify`'s verdict
(Retry-After honoured on 429; backoff with full jitter on 5xx, timeouts and dropped
connections; a few retries for bodies that are not JSON; none for 401/403 or other 4xx). Errors
name the source, the connection, the request and the host, never a credential.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from sync_pipelines.errors import (
    MalformedResponseError,
    Verdict,
    final_error,
)
from sync_pipelines.resilience import CallStats, RateLimiter, call_with_retries


class HttpStatusError(Exception):
    """An answer outside 2xx; `errors.classify` reads its status and Retry-After."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.status_code = response.status_code
        self.headers = response.headers
        self.body = response.content


class HttpSourceClient:
    """The HTTP side of one connection of one source.

    Args:
        source, connection_id: named in every error.
        base_url: requests take paths relative to it (or absolute URLs, e.g. `next` links).
        headers/auth: credentials; they never appear in errors or logs.
        rate_per_s: client-side pacing shared by all threads of this connection (0 = off).
        body_error: optional hook inspecting a decoded 200 body; it may raise RateLimited
            (GraphQL rate-limit errors), TransientError, MalformedResponseError, or a final
            SourceError / SourceAuthError.
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
        max_malformed_attempts: int = 3,
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
        self.retry_limits = {
            "max_attempts": max_attempts,
            "max_malformed_attempts": max_malformed_attempts,
            "max_rate_limit_waits": max_rate_limit_waits,
            "backoff_s": backoff_s,
            "max_backoff_s": max_backoff_s,
            "max_retry_after_s": max_retry_after_s,
        }
        self.body_error = body_error
        # Header values and their last word (the token after "Bearer"), and basic-auth parts.
        values = list((headers or {}).values()) + (list(auth) if isinstance(auth, tuple) else [])
        self._secrets = values + [v.split()[-1] for v in values if v.split()]
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    @property
    def host(self) -> str:
        """The API's host: links to any other one are not followed with the credentials."""
        return self._client.base_url.host

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

    def request(
        self, method: str, path: str, check: Callable[[Any], None] | None = None, **kwargs: Any
    ) -> Any:
        """Send one logical request and return its decoded JSON body, retrying as needed.

        `check` inspects the decoded body inside the attempt (like `body_error`, for this
        call only): a MalformedResponseError it raises is retried like a bad body."""
        request = self._client.build_request(method, path, **kwargs)
        where = f"{self.label}: {method} {request.url.path} on {request.url.host}"

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> BaseException:
            return final_error(where, exc, verdict, attempts, self._secrets)

        return call_with_retries(
            lambda: self._attempt(request, check),
            stats=self.stats,
            describe=describe,
            **self.retry_limits,
        )

    def _attempt(self, request: httpx.Request, check: Callable[[Any], None] | None) -> Any:
        self.stats.add(throttle_wait_s=self.limiter.acquire(), api_calls=1)
        response = self._client.send(request)
        if not response.is_success:
            raise HttpStatusError(response)
        body = json_body(response)
        for inspect in (self.body_error, check):
            if inspect is not None:
                inspect(body)
        return body


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON of a 2xx answer; MalformedResponseError if it is not JSON (an HTML
    login page, a proxy's error page, a body cut off)."""
    require_json(response)
    try:
        return response.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _not_json(response) from exc


def require_json(response: Any) -> None:
    """MalformedResponseError for a 2xx answer whose content type is not JSON.

    Takes an httpx or a requests response; also an httpx response hook and a check in a
    requests adapter, for SDKs that would otherwise fail on such a body with a parse error
    that names neither its status nor its content type.
    """
    content_type = response.headers.get("content-type", "")
    if 200 <= response.status_code < 300 and content_type and "json" not in content_type.lower():
        if isinstance(response, httpx.Response):
            response.read()  # a hook sees the answer before its body is read
        raise _not_json(response)


def _not_json(response: Any) -> MalformedResponseError:
    return MalformedResponseError(
        "the body is not JSON",
        status=response.status_code,
        content_type=response.headers.get("content-type"),
        body=response.content,
    )
