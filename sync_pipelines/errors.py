"""One decision for every external call: retry it, wait it out, or fail at once.

Every source client, the embedder and the vector store put their failures through `classify`,
and `resilience.call_with_retries` acts on the verdict:

- AUTH (401, 403): never retried; a rejected key only burns rate limit.
- RATE_LIMITED (429): the server's Retry-After is waited out, then the call is sent again.
- TRANSIENT (408, 409, 425, every 5xx, timeouts, dropped connections): backoff with jitter.
- MALFORMED (a body that is not the documented JSON: a proxy's login page, a cut-off answer):
  a few retries, since a flaky proxy recovers, then a failure quoting the body's first bytes,
  without Dagster's retries: a login page served three times in a row is configuration.
- PERMANENT (any other answer: 400, 404, 405, 410, 422, ...): the same request gets the same
  answer, so the run fails at once, without Dagster's retries (`PermanentError`).
- UNEXPECTED (anything else, e.g. a bug): not retried by the client; the run's RetryPolicy
  decides.

Vendor SDK exceptions are read by shape, not by type (a `status_code`/`status` on the exception
or its `response`, the `Retry-After` among its headers, timeouts and resets of httpx, requests
or urllib anywhere in its `__cause__` chain), so no vendor SDK is imported here and a new
client gets the same verdicts.
"""

from __future__ import annotations

import email.utils
import enum
import functools
import http.client
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.error import URLError

import httpx
import requests
from dagster import Failure

from sync_pipelines import clock

F = TypeVar("F", bound=Callable[..., Any])
TRANSIENT_STATUS = frozenset({408, 409, 425})  # and every 5xx
BODY_PREFIX_CHARS = 160


class Verdict(enum.Enum):
    """What to do about a failed call (see the module docstring)."""

    TRANSIENT = "transient"
    MALFORMED = "malformed"
    RATE_LIMITED = "rate limited"
    AUTH = "auth"
    PERMANENT = "permanent"
    UNEXPECTED = "unexpected"


class PermanentError(Exception):
    """Retrying cannot fix it: the run fails at once, without Dagster's retries."""


class SourceError(RuntimeError):
    """A source call failed for good (after retries); the message names source and connection."""


class SourcePermanentError(SourceError, PermanentError):
    """The source's answer will not change on retry (404, 400, 410, 422, a malformed body...)."""


class SourceAuthError(SourcePermanentError):
    """Credentials were rejected. Never retried: retrying a bad token only burns rate limit."""


class TransientError(SourceError):
    """A failure an API reports inside a 200 answer (e.g. a GraphQL server error): retried
    like a 5xx."""


class MalformedResponseError(SourceError):
    """The API answered something that is not the documented shape: retried a few times.

    `status`, `content_type` and `body` (when known) go into the final error message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        content_type: str | None = None,
        body: bytes | str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.content_type = content_type
        self.body = body


class RateLimited(Exception):
    """A 429, or an API's own rate-limit error in a 200 body (GraphQL); carries the wait."""

    def __init__(self, retry_after: float | None):
        super().__init__(f"rate limited, retry after {retry_after}")
        self.retry_after = retry_after


_TRANSPORT_ERRORS = (
    TimeoutError,
    ConnectionError,
    URLError,
    http.client.BadStatusLine,  # RemoteDisconnected too
    http.client.IncompleteRead,
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)
# requests raises its own JSONDecodeError, built on simplejson's when simplejson is installed
# (dlt brings it), not on json's: both mean a body that is not JSON.
_JSON_ERRORS = (json.JSONDecodeError, requests.exceptions.JSONDecodeError)
_PARSE_ERRORS = (*_JSON_ERRORS, UnicodeDecodeError)


def classify_status(status: int) -> Verdict:
    """The verdict on an HTTP answer that was not a success."""
    if status in (401, 403):
        return Verdict.AUTH
    if status == 429:
        return Verdict.RATE_LIMITED
    if status in TRANSIENT_STATUS or status >= 500:
        return Verdict.TRANSIENT
    return Verdict.PERMANENT


def classify(exc: BaseException) -> Verdict:
    """The verdict on a failed call, whichever client or SDK raised it."""
    if isinstance(exc, SourceAuthError):
        return Verdict.AUTH
    if isinstance(exc, PermanentError):
        return Verdict.PERMANENT
    if isinstance(exc, RateLimited):
        return Verdict.RATE_LIMITED
    if isinstance(exc, (MalformedResponseError, *_PARSE_ERRORS)):
        return Verdict.MALFORMED
    if isinstance(exc, TransientError):
        return Verdict.TRANSIENT
    if isinstance(exc, SourceError):  # an inner layer's final word (e.g. "still rate limited")
        return Verdict.UNEXPECTED
    status = status_of(exc)
    if status is not None:
        return classify_status(status)
    for link in _chain(exc):  # SDKs wrap timeouts and resets in their own exceptions
        if isinstance(link, _TRANSPORT_ERRORS):
            return Verdict.TRANSIENT
        if isinstance(link, _PARSE_ERRORS):
            return Verdict.MALFORMED
    return Verdict.UNEXPECTED


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (on itself or on its `response`), if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (Retry-After, or OpenAI's retry-after-ms), if it did."""
    if isinstance(exc, RateLimited):
        return exc.retry_after
    for holder in (exc, getattr(exc, "response", None)):
        headers = getattr(holder, "headers", None)
        if not headers:
            continue
        try:
            return max(0.0, float(header(headers, "retry-after-ms")) / 1000)
        except (TypeError, ValueError):
            return parse_retry_after(header(headers, "retry-after"))
    return None


def header(headers: Any, name: str) -> str | None:
    """A header's value from any SDK's headers mapping, whatever the case of its keys."""
    found = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    value = found.get(name.lower())
    if isinstance(value, (list, tuple)):  # some SDKs keep every value of a header
        value = value[0] if value else None
    return None if value is None else str(value)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - clock.now_epoch())


def body_prefix(body: bytes | str | None, secrets: Iterable[str | None] = ()) -> str:
    """The first characters of an answer's body, on one line, scrubbed of secrets, quoted."""
    if body is None:
        return "(no body)"
    raw = body[:4096]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(scrub(text, secrets).split())
    if not text:
        return "(empty body)"
    more = len(text) > BODY_PREFIX_CHARS or len(body) > len(raw)
    return repr(text[:BODY_PREFIX_CHARS] + ("…" if more else ""))


def describe_answer(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """What the last attempt got, for an error message: status, content type and the body's
    first bytes, or the exception (scrubbed) when there was no answer."""
    if isinstance(exc, MalformedResponseError):
        if exc.status is None and exc.body is None:
            return scrub(str(exc), secrets)
        status = f"HTTP {exc.status}" if exc.status is not None else "the answer"
        kind = f" ({exc.content_type})" if exc.content_type else ""
        return f"{exc}: {status}{kind}: {body_prefix(exc.body, secrets)}"
    if isinstance(exc, (SourceError, RateLimited)):
        return scrub(str(exc), secrets)
    if isinstance(exc, _JSON_ERRORS):
        return f"a body that is not JSON ({exc.msg}): {body_prefix(exc.doc, secrets)}"
    status = status_of(exc)
    if status is not None:
        return f"HTTP {status}: {body_prefix(_body_of(exc), secrets)}"
    return scrub(f"{type(exc).__name__}: {exc}", secrets)


def final_error(
    where: str,
    exc: BaseException,
    verdict: Verdict,
    attempts: int,
    secrets: Iterable[str | None] = (),
    *,
    error: type[Exception] = SourceError,
    permanent: type[Exception] = SourcePermanentError,
    auth: type[Exception] = SourceAuthError,
    auth_hint: str = "check the secrets the registry names",
) -> Exception:
    """The error a call ends with, for `call_with_retries`' `describe`.

    Its class (`error`, `permanent` or `auth`: a source's by default, the embedder and the
    store pass theirs) tells Dagster whether a retry may help; its message names the call
    (`where`: who, method, path, host) and what came back, scrubbed. A source's own final
    errors (an auth error it recognised in a 200 body, ...) pass as they are.
    """
    signals = (MalformedResponseError, TransientError)
    if isinstance(exc, SourceError) and not isinstance(exc, signals):
        return exc
    answer = describe_answer(exc, secrets)
    tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
    if verdict is Verdict.AUTH:
        return auth(f"{where}: the credentials were rejected ({answer}); {auth_hint}")
    if verdict is Verdict.PERMANENT:
        return permanent(f"{where}: {answer} (not retried: it will not change)")
    if verdict is Verdict.MALFORMED:
        return permanent(f"{where}: malformed answer after {tries}, the last: {answer}")
    if verdict is Verdict.RATE_LIMITED:
        return error(f"{where}: still rate limited after {tries}")
    if verdict is Verdict.TRANSIENT:
        return error(f"{where}: failed after {tries}: {answer}")
    return error(f"{where}: {answer}")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secrets, the credential-looking environment values and known
    token shapes (see alerts/scrub.py)."""
    # Imported here: the alerts package imports the assets, which import this module.
    from sync_pipelines.alerts.scrub import scrub_secrets, secret_env_values

    return scrub_secrets(text, [*secrets, *secret_env_values()])


def fail_fast(compute_fn: F) -> F:
    """Wrap an asset's compute function so that a PermanentError, or a ValueError (bad
    configuration or input), becomes Failure(allow_retries=False): the asset's RetryPolicy
    then spends no retries on what would fail the same way."""

    @functools.wraps(compute_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return compute_fn(*args, **kwargs)
        except (PermanentError, ValueError) as exc:
            raise Failure(str(exc), allow_retries=False) from exc

    return wrapper  # type: ignore[return-value]


def _body_of(exc: BaseException) -> Any:
    """The body an SDK exception kept, wherever it keeps it: raw if it can, else re-encoded."""
    response = getattr(exc, "response", None)
    places = ((response, "content"), (response, "text"), (exc, "body"), (exc, "text"))
    for holder, name in places:
        value = getattr(holder, name, None)
        if isinstance(value, (bytes, str)):
            return value
    for value in (getattr(exc, "body", None), getattr(response, "data", None)):
        if isinstance(value, (dict, list)):  # decoded JSON (openai, slack_sdk)
            return json.dumps(value)
    message = getattr(exc, "message", None)  # pinecone keeps a body that is not JSON here
    return message if isinstance(message, str) else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__
