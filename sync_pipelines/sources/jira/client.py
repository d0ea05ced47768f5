"""Jira Cloud client for one connection: the `jira` package behind the shared retry layer.

Every HTTP request the package sends goes through one metered adapter: it paces the request
with the connection's rate limiter, counts it, and on a 429 holds the whole connection (every
thread) for the shared rule's wait (`resilience.rate_limit_wait`: the `Retry-After`, capped,
plus jitter) and re-sends; it waits inside the adapter because retrying a whole package call
would repeat pages. The package's own ResilientSession retries are off (they would sleep
10-60 s inside the package on a dropped connection); everything else transient (5xx,
timeouts, dropped connections; malformed bodies a few times) is retried here, as
`errors.classify` decides, with exponential backoff and jitter; 401/403 and other 4xx fail at
once with a message naming the connection and the request, never a credential (a JIRAError's
text includes the request headers, so it is never quoted whole).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jira import JIRA, JIRAError
from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import (
    SourcePermanentError,
    Verdict,
    final_error,
    scrub,
)
from sync_pipelines.paging import follow_cursor, items_check
from sync_pipelines.resilience import (
    CallStats,
    RateLimiter,
    SourceError,
    call_with_retries,
)
from sync_pipelines.sources.jira.pages import (
    expect,
    ids_page_check,
    next_offset,
    search_next,
    search_page_check,
)
from sync_pipelines.sources.jira.transport import MeteredAdapter
from sync_pipelines.sources.resource import SourceResourceBase

T = TypeVar("T")

# Jira Cloud meters by cost per time window and publishes no fixed request rate; 10 requests/s
# per site is a conservative pace that stays clear of its 429s.
DOCUMENTED_RATE_PER_S = 10.0
PROJECT_PAGE_SIZE = 50
# search/jql's page cap when only `id` (or `key`) is requested.
IDS_PAGE_MAX = 5000
ID_BATCH = 100
USER_BATCH = 100
API_VERSION = "3"  # rich text as ADF; the sync flattens it


class JiraRequestError(SourceError):
    """Jira refused a request (still, after retries); `status` tells callers which."""

    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


class JiraPermanentError(JiraRequestError, SourcePermanentError):
    """Jira refused a request in a way retrying cannot change (400, 404, 410, 422, ...)."""


class JiraResource(SourceResourceBase):
    """How to talk to Jira Cloud; the site, credentials and options come from each connection.
    Every site has its own URL, so there is no default one."""

    ENV_PREFIX: ClassVar[str] = "JIRA"
    BASE_URL_HINT: ClassVar[str] = "https://<site>.atlassian.net"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    # search/jql returns at most 100 issues per page once fields beyond id/key are requested.
    DEFAULT_PAGE_SIZE: ClassVar[int] = 100
    MAX_PAGE_SIZE: ClassVar[int] = 100

    max_rate_limit_waits: int = Field(
        default=8, description="429s waited out (their Retry-After) per request."
    )
    listing_page_size: int = Field(
        default=IDS_PAGE_MAX,
        ge=1,
        le=IDS_PAGE_MAX,
        description="`maxResults` of the reconciliation's ids-only search (default: the largest).",
    )

    def client_for(self, connection: Connection) -> JiraClient:
        """A client for one site; no request is sent until the first call."""
        server, page_size = self.base_url_for(connection), self.pages()  # before the secrets
        return JiraClient(
            connection_id=connection.id,
            server=server,
            email=connection.secret("email"),
            api_token=connection.secret("api_token"),
            timeout_s=self.checked_timeout(),
            rate_per_s=self.pace(),
            page_size=page_size,
            max_attempts=self.max_attempts,
            max_rate_limit_waits=self.max_rate_limit_waits,
            listing_page_size=self.listing_page_size,
        )


class JiraClient:
    """One site's client: paced, retried and counted; call `close()` when done."""

    def __init__(
        self,
        *,
        connection_id: str,
        server: str,
        email: str,
        api_token: str,
        timeout_s: float = 30.0,
        rate_per_s: float = DOCUMENTED_RATE_PER_S,
        page_size: int = JiraResource.DEFAULT_PAGE_SIZE,
        max_attempts: int = 6,
        max_rate_limit_waits: int = 8,
        listing_page_size: int = IDS_PAGE_MAX,
    ):
        self.label = f"jira connection '{connection_id}'"
        self.site_url = server.rstrip("/")
        self._secrets = (api_token,)
        self.page_size = page_size
        self.listing_page_size = listing_page_size
        self.max_attempts = max_attempts
        self.stats = CallStats()
        self.limiter = RateLimiter(rate=rate_per_s)  # every thread of the connection
        # No request on construction: serverInfo goes through `call` in `connect()`.
        self._jira = JIRA(
            server=self.site_url,
            basic_auth=(email, api_token),
            options={"rest_api_version": API_VERSION},
            timeout=timeout_s,
            max_retries=0,  # retries happen in the adapter (429) and in `call` (the rest)
            get_server_info=False,
        )
        adapter = MeteredAdapter(self.limiter, self.stats, max_rate_limit_waits)
        for prefix in ("http://", "https://"):
            self._jira._session.mount(prefix, adapter)
        self._connect_lock = threading.Lock()
        self._connected = False

    def close(self) -> None:
        self._jira.close()

    # -- the retry layer ---------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """One logical call, retried as `errors.classify` says; errors name the connection and
        the request."""

        def describe(exc: BaseException, verdict: Verdict, attempts: int) -> BaseException:
            status = exc.status_code if isinstance(exc, JIRAError) else None
            response = getattr(exc, "response", None)
            request = getattr(exc, "request", None) or getattr(response, "request", None)
            method, url = getattr(request, "method", None), getattr(request, "url", None)
            call = f"{method} {urlsplit(url).path}" if method and url else what
            where = f"{self.label}: {call} on {urlsplit(self.site_url).hostname}"
            if status is None or verdict is Verdict.AUTH:
                return final_error(where, exc, verdict, attempts, self._secrets)
            # Jira's own text names what it rejected (callers read it); str(exc) would
            # include the request headers.
            text = scrub((exc.text or "").strip(), self._secrets)[:300]
            if verdict is Verdict.PERMANENT:
                return JiraPermanentError(f"{where}: HTTP {status}: {text}", status)
            tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
            return JiraRequestError(f"{where}: HTTP {status} after {tries}: {text}", status)

        return call_with_retries(
            fn,
            stats=self.stats,
            max_attempts=self.max_attempts,
            max_rate_limit_waits=0,  # the adapter waits out 429s
            describe=describe,
        )

    def connect(self) -> None:
        """Check the site once: enhanced search only exists on Jira Cloud."""
        with self._connect_lock:
            if self._connected:
                return
            info = self.call(
                "serverInfo", lambda: expect(self._jira.server_info(), dict, "serverInfo")
            )
            if info.get("deploymentType") != "Cloud":
                raise ValueError(
                    f"{self.label}: base_url {self.site_url} is a Jira "
                    f"{info.get('deploymentType')!r} site, not Cloud; this source needs Jira "
                    "Cloud's enhanced search"
                )
            self._jira.deploymentType = "Cloud"
            self._connected = True

    # -- reads -------------------------------------------------------------------------------

    def timezone(self) -> ZoneInfo:
        """The account's time zone: Jira reads the dates of a JQL query in it."""
        self.connect()
        me = self.call("myself", lambda: expect(self._jira.myself(), dict, "myself"))
        name = me.get("timeZone") or "UTC"
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SourceError(f"{self.label}: unknown account time zone {name!r}") from None

    def _listing(
        self,
        what: str,
        items: str,
        read: Callable[[str | None], Any],
        after: Callable[[dict, str | None], str | None],
        check: Callable[[dict], None] | None = None,
    ) -> Iterator[Any]:
        """Every item of a paged listing, each page one retried call: `read(cursor)` answers a
        page (None: the first), `after(page, cursor)` the next cursor (None: the last page);
        `check(page)` may refuse a page beyond its items list (malformed: retried too)."""
        has_items = items_check(items)

        def fetch(cursor: str | None) -> dict:
            def page() -> dict:
                body = read(cursor)
                has_items(body)  # a page without its list is malformed: retried
                if check is not None:
                    check(body)
                return body

            body = self.call(what, page)
            return {items: body[items], "next": after(body, cursor)}

        return follow_cursor(fetch, items=items, cursor_out="next", where=f"{self.label}: {what}")

    def _offset_listing(self, path: str, params: dict, size: int) -> Iterator[Any]:
        """`values` of a startAt/maxResults endpoint the package has no method for (hence its
        generic JSON getter)."""
        return self._listing(
            path,
            "values",
            lambda start: self._jira._get_json(
                path, params={**params, "startAt": int(start or 0), "maxResults": size}
            ),
            next_offset,
        )

    def project_keys(self) -> list[str]:
        """Keys of every live project the account can browse (the paged project search; the
        package's `projects()` calls the deprecated, unpaged GET /project)."""
        self.connect()
        projects = self._offset_listing("project/search", {"orderBy": "key"}, PROJECT_PAGE_SIZE)
        return [str(p["key"]) for p in projects if isinstance(p, dict) and "key" in p]

    def search(self, jql: str, fields: Sequence[str]) -> Iterator[dict]:
        """Every issue the query matches, page after page by nextPageToken (no cap)."""
        self.connect()
        yield from self._listing(
            "search/jql",
            "issues",
            lambda token: self._jira.enhanced_search_issues(
                jql,
                nextPageToken=token,
                maxResults=self.page_size,
                fields=list(fields),  # the package rewrites the list in place
                json_result=True,
            ),
            search_next,
            search_page_check,
        )

    def search_ids(self, jql: str) -> Iterator[str]:
        """The id of every issue the query matches, by nextPageToken to the end: the same
        enhanced search with `fields=id` alone, so Jira serves its largest pages
        (`listing_page_size`, at most 5000), and sent as is (the package's method would first
        read `GET field` to translate field names). Every page is checked inside its retried
        call: one without its issues, with an issue without an id, or not marked last yet
        without a token raises once the retries are spent, so no caller takes a cut listing
        for a complete one."""
        self.connect()
        issues = self._listing(
            "search/jql",
            "issues",
            lambda token: self._jira._get_json(
                "search/jql",
                params={
                    "jql": jql,
                    "fields": "id",
                    "maxResults": self.listing_page_size,
                    **({"nextPageToken": token} if token else {}),
                },
            ),
            search_next,
            ids_page_check,
        )
        for issue in issues:
            yield str(issue["id"])  # as the sync reads it: the doc_ids must match

    def recent_comments(self, issue_key: str, count: int) -> list[dict]:
        """The issue's `count` newest comments, oldest first."""
        self.connect()
        comments = self.call(
            "issue/comment",
            lambda: self._jira.comments(issue_key, max_results=count, order_by="-created"),
        )
        return [c.raw for c in reversed(comments)]

    def issue_keys(self, issue_ids: Iterable[str]) -> dict[str, str | None]:
        """Issue id -> key (None for an issue that does not exist or is not visible).

        Ids are looked up 100 at a time with `id in (...)`. Jira rejects the whole query
        (400) if one id is unknown, and hides archived projects' issues from search, so a
        rejected batch is asked again without the ids the error names (or split in halves
        if it names none); ids no search returns are then read one by one.
        """
        self.connect()
        ids = sorted({str(i) for i in issue_ids}, key=lambda i: (len(i), i))
        found: dict[str, str | None] = {}
        for at in range(0, len(ids), ID_BATCH):
            found.update(self._search_keys(ids[at : at + ID_BATCH]))
        for issue_id in ids:
            if issue_id not in found:
                found[issue_id] = self._issue_key(issue_id)
        return found

    def _search_keys(self, ids: list[str]) -> dict[str, str | None]:
        def page() -> dict:
            body = self._jira.enhanced_search_issues(
                f"id in ({', '.join(ids)})", maxResults=len(ids), fields=["key"], json_result=True
            )
            items_check("issues")(body)
            return body

        try:
            issues = self.call("search/jql", page)["issues"]
        except JiraRequestError as exc:
            if exc.status != 400:
                raise
            # Jira names the values it rejects: drop those and ask again; if it names none
            # of ours, split the batch until the culprits stand alone.
            named = {i for i in ids if re.search(rf"\b{i}\b", str(exc))}
            rest = [i for i in ids if i not in named]
            if named:
                return self._search_keys(rest) if rest else {}
            if len(ids) == 1:
                return {}
            half = len(ids) // 2
            return {**self._search_keys(ids[:half]), **self._search_keys(ids[half:])}
        return {str(i.get("id")): str(i.get("key")) for i in issues if isinstance(i, dict)}

    def _issue_key(self, issue_id: str) -> str | None:
        try:
            issue = self.call("issue", lambda: self._jira.issue(issue_id, fields="project"))
        except JiraRequestError as exc:
            if exc.status == 404:
                return None
            raise
        return issue.key

    def user_names(self, account_ids: Iterable[str]) -> dict[str, str]:
        """Account id -> display name for the accounts Jira knows (GET user/bulk, paged, no
        method in the package); accounts Jira no longer knows (or hides) are simply absent."""
        self.connect()
        ids = sorted(set(account_ids))
        names: dict[str, str] = {}
        for at in range(0, len(ids), USER_BATCH):
            batch = {"accountId": ids[at : at + USER_BATCH]}
            for user in self._offset_listing("user/bulk", batch, USER_BATCH):
                if isinstance(user, dict) and user.get("accountId"):
                    names[str(user["accountId"])] = str(user.get("displayName") or "")
        return {account: name for account, name in names.items() if name}
