"""Gong REST v2 client for one connection: the shared HTTP layer plus Gong's conventions.

Gong has no Python SDK. Every call goes through the `HttpSourceClient` the resource base builds
(URL, timeout, pacing at Gong's 3 calls/s, retry budget; Retry-After on 429, backoff on 5xx, no
retry on 401/403), with Basic auth `accessKey:accessKeySecret`. Each company has its own API base
URL (https://us-NNNN.api.gong.io, shown on Gong's API page), so a connection must name it.

Listings page with a cursor: the answer's `records.cursor` (absent on the last page) goes back as
the body's `cursor` (POST) or the query's `cursor` (GET). Gong answers a filter that matches no
call with 404 "No calls found corresponding to the provided filters": an empty result, not an
error, so `NoCallsFound` turns exactly that answer into an empty page (any other 404 stays an
error). Every page is checked inside its request (a call without an id or a parseable start is a
malformed page, retried like a bad body).

Calls: `POST /v2/calls/extensive` with a fromDateTime/toDateTime (or callIds) filter and a
contentSelector asking for the parties and the CRM context with its fields; transcripts: `POST
/v2/calls/transcript` with callIds, in batches of the resource's page size; the reconciliation's
cheap listing: `GET /v2/calls` (metadata only). The 10,000 calls a day per company are not
counted here: a 429 for it waits like any other, then fails the run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Self

import httpx
from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import MalformedResponseError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import follow_cursor
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "gong"
DOCUMENTED_RATE_PER_S = 3.0  # per company; also 10,000 calls a day
MAX_BATCH = 100  # call ids per transcript request (Gong's page size is 100)
EXTENSIVE_PATH = "/v2/calls/extensive"
TRANSCRIPT_PATH = "/v2/calls/transcript"
CALLS_PATH = "/v2/calls"
NO_CALLS = "No calls found"  # the start of Gong's answer to a filter matching nothing
# Path (suffix) -> the items key of its answer.
ITEMS_OF = {EXTENSIVE_PATH: "calls", TRANSCRIPT_PATH: "callTranscripts", CALLS_PATH: "calls"}
# Parties (speakerId -> name, affiliation, email) and CRM links with their fields (names).
CONTENT_SELECTOR = {
    "context": "Extended",
    "contextTiming": ["Now"],
    "exposedFields": {"parties": True},
}


class GongResource(SourceResourceBase):
    """How to talk to Gong; the key pair, base URL and options come from each connection."""

    ENV_PREFIX: ClassVar[str] = "GONG"
    DEFAULT_BASE_URL: ClassVar[str | None] = None  # per company
    BASE_URL_HINT: ClassVar[str] = "https://us-12345.api.gong.io (see Gong's API page)"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = MAX_BATCH  # call ids per transcript request
    MAX_PAGE_SIZE: ClassVar[int] = MAX_BATCH

    timeout_s: float = Field(default=60.0, description="Per-request timeout (transcripts).")

    def client_for(self, connection: Connection) -> GongClient:
        """The client calls <base URL>/v2/..., whether or not the URL ends in /v2."""
        root = self.base_url_for(connection).rstrip("/").removesuffix("/v2")
        batch = self.pages()  # a bad setting fails before the secrets are read
        auth = (connection.secret("access_key"), connection.secret("access_key_secret"))
        transport = NoCallsFound(env_transport(root))
        http = self.http_client(connection, base_url=root, auth=auth, transport=transport)
        return GongClient(http, batch)


def env_transport(url: str) -> httpx.HTTPTransport:
    """The transport httpx would use for `url` by itself: through the environment's proxy
    (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) unless NO_PROXY exempts the host. Giving httpx a
    transport of one's own turns its reading of the environment off, so it is done here."""
    parsed = httpx.URL(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parsed.host):
        return httpx.HTTPTransport(proxy=proxy)
    return httpx.HTTPTransport()


class NoCallsFound(httpx.BaseTransport):
    """Gong's 404 "No calls found corresponding to the provided filters" is an empty page:
    answered as a 200 with no records and an empty items list. Any other 404 passes as is."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        items = next((v for k, v in ITEMS_OF.items() if request.url.path.endswith(k)), None)
        if response.status_code != 404 or items is None:
            return response
        response.read()
        if not says_no_calls(response.content):
            return response
        response.close()
        empty = {"totalRecords": 0, "currentPageSize": 0, "currentPageNumber": 0}
        return httpx.Response(200, json={"records": empty, items: []}, request=request)

    def close(self) -> None:
        self.inner.close()


def says_no_calls(content: bytes) -> bool:
    """Whether a 404's body is Gong's {errors: ["No calls found ..."]}."""
    try:
        errors = json.loads(content).get("errors")
    except (ValueError, AttributeError):
        return False
    return isinstance(errors, list) and any(
        isinstance(e, str) and e.startswith(NO_CALLS) for e in errors
    )


def iso_z(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def date_filter(since: float, until: float) -> dict[str, str]:
    """fromDateTime (inclusive) and toDateTime (exclusive) in whole UTC seconds covering
    [since, until): a few calls outside it may come, the sync filters them out."""
    return {"fromDateTime": iso_z(math.floor(since)), "toDateTime": iso_z(math.ceil(until))}


def started_epoch(value: Any) -> float:
    """A Gong date-time with its offset ('2026-11-17T16:30:00-08:00') as UTC epoch seconds;
    ValueError for anything else (a time without a zone is ambiguous)."""
    moment = dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return moment.timestamp()


def call_id(call: dict) -> str:
    return str(call["metaData"]["id"])


def call_start(call: dict) -> float:
    return started_epoch(call["metaData"]["started"])


def _checker(items: str, valid: Callable[[Any], bool], what: str) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        found = body.get(items) if isinstance(body, dict) else None
        if found is None and _empty_page(body, items):
            return
        if not isinstance(found, list):
            raise MalformedResponseError(f"a page without a '{items}' list")
        if not all(isinstance(item, dict) and _valid(valid, item) for item in found):
            raise MalformedResponseError(f"a page with {what}")

    return check


def _empty_page(body: Any, items: str) -> bool:
    """A page whose `records` say it holds nothing and ends the listing, with its items key
    left out: an empty answer, not a malformed one."""
    records = body.get("records") if isinstance(body, dict) else None
    return (
        items not in body
        and isinstance(records, dict)
        and 0 in (records.get("currentPageSize"), records.get("totalRecords"))
        and not records.get("cursor")
    )


def _valid(valid: Callable[[Any], bool], item: dict) -> bool:
    try:
        return bool(valid(item))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _extensive_ok(call: dict) -> bool:
    return bool(call_id(call)) and call_start(call) is not None


def listed_meta(call: dict) -> dict:
    """A `GET /v2/calls` item: the call's metadata, flat (as Gong documents it) or, should
    it come nested like the extensive listing's, under `metaData`."""
    nested = call.get("metaData")
    return nested if isinstance(nested, dict) else call


def _listed_ok(call: dict) -> bool:
    meta = listed_meta(call)
    return bool(meta["id"]) and started_epoch(meta["started"]) is not None


def _transcript_ok(entry: dict) -> bool:
    return bool(entry["callId"]) and isinstance(entry.get("transcript") or [], list)


CHECK_EXTENSIVE = _checker("calls", _extensive_ok, "a call without an id or a start time")
CHECK_CALLS = _checker("calls", _listed_ok, "a call without an id or a start time")
CHECK_TRANSCRIPTS = _checker("callTranscripts", _transcript_ok, "a malformed transcript")


def batches(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    for at in range(0, len(ids), size):
        yield list(ids[at : at + size])


class GongClient:
    """One Gong company: its calls with parties and CRM context, their transcripts, and the
    id listing; `stats` and `pages_read` count what it cost."""

    def __init__(self, http: HttpSourceClient, batch_size: int = MAX_BATCH):
        self.http = http
        self.label = http.label
        self.stats = http.stats
        self.batch_size = batch_size
        self.pages_read = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def calls(self, since: float, until: float, workspace_id: str | None = None) -> Iterator[dict]:
        """Every call started in [since, until) (epoch seconds), with parties and context."""
        return self._extensive({**date_filter(since, until), **_workspace(workspace_id)})

    def calls_by_id(self, ids: Sequence[str], workspace_id: str | None = None) -> Iterator[dict]:
        """The calls with these ids that Gong still has (a deleted one is simply absent)."""
        for batch in batches(ids, self.batch_size):
            yield from self._extensive({"callIds": batch, **_workspace(workspace_id)})

    def transcripts(self, ids: Sequence[str]) -> dict[str, list[dict]]:
        """Call id -> its monologues, for the calls Gong has transcribed; a call not
        transcribed yet is absent or has an empty list."""
        found: dict[str, list[dict]] = {}
        for batch in batches(ids, self.batch_size):
            body = {"filter": {"callIds": batch}}
            for entry in self._pages("POST", TRANSCRIPT_PATH, CHECK_TRANSCRIPTS, json=body):
                found[str(entry["callId"])] = list(entry.get("transcript") or [])
        return found

    def call_list(
        self, since: float, until: float, workspace_id: str | None = None
    ) -> Iterator[dict]:
        """`GET /v2/calls`: the metadata (id, started...) of every call started in the
        range, the cheapest listing Gong has."""
        params = {**date_filter(since, until), **_workspace(workspace_id)}
        for call in self._pages("GET", CALLS_PATH, CHECK_CALLS, params=params):
            yield listed_meta(call)

    def _extensive(self, filters: dict) -> Iterator[dict]:
        body = {"filter": filters, "contentSelector": CONTENT_SELECTOR}
        return self._pages("POST", EXTENSIVE_PATH, CHECK_EXTENSIVE, json=body)

    def _pages(self, method: str, path: str, check, *, json=None, params=None) -> Iterator[dict]:
        """Items across every page of a cursor listing (the cursor in the body for a POST,
        in the query for a GET); a repeating cursor fails naming the listing."""

        def fetch(cursor: str | None) -> Any:
            more = {"cursor": cursor} if cursor else {}
            kwargs = {"json": {**json, **more}} if json is not None else {}
            if params is not None:
                kwargs["params"] = {**params, **more}
            body = self.http.request(method, path, check=check, **kwargs)
            self.pages_read += 1
            return body

        return follow_cursor(
            fetch,
            items=ITEMS_OF[path],
            cursor_out="records.cursor",
            where=f"{self.label}: {method} {path}",
        )


def _workspace(workspace_id: str | None) -> dict[str, str]:
    return {"workspaceId": workspace_id} if workspace_id else {}
