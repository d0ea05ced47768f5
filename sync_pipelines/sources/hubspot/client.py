"""HubSpot CRM v3/v4 client for one connection: the shared HTTP layer plus HubSpot's rules.

A private app's token goes as `Authorization: Bearer`. Two paces share the connection's call
counts: every API call is paced at the private app's burst limit (100 requests per 10 s on
Free/Starter, 190 on Professional/Enterprise: HUBSPOT_RATE_PER_S=19), the search endpoints at
their own 5 requests/s per account. A 429 waits out its Retry-After, or backs off
exponentially when HubSpot sends none (it does not always); 401/403 fail at once.

Search (`POST /crm/v3/objects/{type}/search`) answers up to 200 records a page, sorted
ascending by the modified date, and never past 10,000 results per query: the answer's `total`
decides, and a window holding more is split in time and each part searched on its own (the
classic silent-loss trap is paging until the 400 and calling it done). Its `after` is an
offset into a result set that moves while people work: a record edited mid-query jumps to the
end, everything behind it shifts up one, and offset paging skips a record it never saw. So a
part is read by keyset: each next page is a new query from the last modified date seen (GTE),
dropping the records at exactly that date already read (HubSpot allows one sort rule, so the
tie-break by id is ours). Only a run of more than a page of records sharing one millisecond
pages on with `after`, the rest of that query.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import MalformedResponseError, SourcePermanentError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import items_check
from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "hubspot"
DOCUMENTED_RATE_PER_S = 10.0  # 100 requests per 10 s, private apps on Free/Starter
SEARCH_RATE_PER_S = 5.0  # the search endpoints' own limit, per account
MAX_SEARCH_PAGE = 200
MAX_LIST_PAGE = 100
MAX_OWNERS_PAGE = 500
SEARCH_CAP = 10_000  # results one search query can page through
MAX_ASSOCIATION_INPUTS = 1000
SPLIT_FILL = 0.8  # aim each part of a split window at 80% of the cap


class HubspotResource(SourceResourceBase):
    """How to talk to HubSpot; the private app's token and options come from each connection."""

    ENV_PREFIX: ClassVar[str] = "HUBSPOT"
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://api.hubapi.com"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = DOCUMENTED_RATE_PER_S
    DEFAULT_PAGE_SIZE: ClassVar[int] = MAX_SEARCH_PAGE
    MAX_PAGE_SIZE: ClassVar[int] = MAX_SEARCH_PAGE

    search_rate_per_s: float | None = Field(
        default=None,
        description="Pace of the search endpoints (0 = off); unset: HUBSPOT_SEARCH_RATE_PER_S, "
        "else HubSpot's 5 requests/s. Never faster than rate_per_s.",
    )

    def search_pace(self) -> float:
        general = self.pace()
        if self.search_rate_per_s is not None:
            rate = self.search_rate_per_s
        else:
            rate = float(os.environ.get("HUBSPOT_SEARCH_RATE_PER_S") or SEARCH_RATE_PER_S)
        if rate < 0:
            raise ValueError(f"the HubSpot search pace must be >= 0, got {rate}")
        if general == 0 or rate == 0:
            return general and rate  # either off: whichever is 0
        return min(general, rate)

    def client_for(self, connection: Connection) -> HubspotClient:
        page_size = self.pages()  # configuration errors come before the secret is read
        search_pace = self.search_pace()
        headers = {"Authorization": f"Bearer {connection.secret('access_token')}"}
        stats = CallStats()
        http = self.http_client(connection, headers=headers, stats=stats)
        search = self.http_client(connection, headers=headers, stats=stats, rate_per_s=search_pace)
        return HubspotClient(http, search, page_size, stats)


@dataclass
class HubspotClient:
    """Calls of one connection; `stats` counts both paces' calls, `splits` the windows
    searched in parts because they held more than 10,000 records."""

    http: HttpSourceClient
    search_http: HttpSourceClient
    page_size: int
    stats: CallStats
    splits: int = 0
    search_pages: int = 0
    keyset_restarts: int = 0  # search queries started again from the last modified date
    readers: Any = None  # the run's RunReaders (tables.py), stopped on close
    spool: Any = None  # the run's association links (associations.Spool), removed on close
    run: Any = None  # the run's CrmRun, for loading the links after the objects
    reads: dict = field(default_factory=dict)  # object -> associated objects read, this run
    closed: bool = False
    _owners: dict[str, str] | None = field(default=None, repr=False)

    def close(self) -> None:
        self.closed = True
        if self.readers is not None:
            self.readers.stop()
        if self.spool is not None:
            self.spool.close()
        self.http.close()
        self.search_http.close()

    # ------------------------------------------------------------------ metadata
    def property_names(self, object_type: str) -> list[str]:
        """Every property of the object, custom ones included (`GET /crm/v3/properties`)."""
        body = self.http.get(f"/crm/v3/properties/{object_type}", check=items_check("results"))
        return [p["name"] for p in body["results"] if isinstance(p, dict) and p.get("name")]

    def owners(self, archived: bool = False) -> Iterator[list[dict]]:
        """Pages of owners (`GET /crm/v3/owners`), archived ones with archived=True."""
        params = {"limit": MAX_OWNERS_PAGE, "archived": str(archived).lower()}
        yield from self._after_pages(self.http, "GET", "/crm/v3/owners", params=params)

    def owner_emails(self) -> dict[str, str]:
        """Owner id -> email, for documents' authors (read once per run)."""
        if self._owners is None:
            found = {}
            for archived in (False, True):
                for page in self.owners(archived):
                    found.update({str(o["id"]): o.get("email") or "" for o in page})
            self._owners = found
        return self._owners

    # ------------------------------------------------------------------ records
    def search(
        self,
        object_type: str,
        modified: str,
        lower_ms: int,
        upper_ms: int,
        properties: Sequence[str],
        page_size: int | None = None,
    ) -> Iterator[list[dict]]:
        """Pages of the records modified in [lower_ms, upper_ms), ascending by `modified`.
        A window whose `total` exceeds what one query can page through is split in time
        (into parts sized for ~80% of the cap) and each part searched; a part of one
        millisecond still over the cap cannot be read completely and fails the run."""
        size = min(page_size or self.page_size, MAX_SEARCH_PAGE)
        properties = [*properties, *([] if modified in properties else [modified])]
        pending = [(lower_ms, upper_ms)]
        while pending:
            lo, hi = pending.pop(0)
            if hi <= lo:
                continue
            first = self._search_page(object_type, modified, lo, hi, properties, size, None)
            total = first.get("total")
            if not isinstance(total, int):
                raise MalformedResponseError("a search answer without an integer 'total'")
            if total > SEARCH_CAP:
                if hi - lo <= 1:
                    raise SourcePermanentError(
                        f"{self.http.label}: {total} {object_type} modified in one "
                        f"millisecond ({lo}); HubSpot search cannot page past {SEARCH_CAP}"
                    )
                parts = min(hi - lo, max(2, math.ceil(total / (SEARCH_CAP * SPLIT_FILL))))
                step = (hi - lo) / parts
                edges = [lo + round(step * k) for k in range(parts)] + [hi]
                pending[0:0] = [(a, b) for a, b in itertools.pairwise(edges) if b > a]
                self.splits += 1
                continue
            yield from self._search_rest(first, object_type, modified, lo, hi, properties, size)

    def _search_rest(self, first, object_type, modified, lo, hi, properties, size):
        """The part [lo, hi) by keyset: every next page a fresh query from the last modified
        date seen, so edits made meanwhile (records leaving or re-entering the part) never
        shift a record out of reach."""
        body, floor, after = first, lo, None
        at_floor: set[str] = set()  # ids read whose modified date is exactly `floor`
        cursors: set[str] = set()
        while True:
            results = body["results"]
            fresh = [r for r in results if not (str(r.get("id")) in at_floor
                                                and self._ms(r, modified) == floor)]  # fmt: skip
            if fresh:
                yield fresh
            following = (((body.get("paging") or {}).get("next")) or {}).get("after")
            if not following or not results:
                return
            last = self._ms(results[-1], modified)
            if last < floor:
                raise MalformedResponseError(
                    f"{self.http.label}: search of {object_type} answered a modified date "
                    f"{last} below its GTE filter {floor}"
                )
            if last > floor:  # the usual case: a new query from the last date seen
                floor, after = last, None
                at_floor = {str(r.get("id")) for r in results if self._ms(r, modified) == last}
                self.keyset_restarts += 1
            else:  # the whole page shares one millisecond: page on within this query
                at_floor |= {str(r.get("id")) for r in results}
                if following in cursors:
                    raise MalformedResponseError(f"the search cursor {following!r} came back")
                cursors.add(following)
                after = following
            body = self._search_page(object_type, modified, floor, hi, properties, size, after)

    def _ms(self, record: dict, modified: str) -> int:
        """A search result's modified date in epoch milliseconds (the value the filter and
        the sort use: the property, else the record's updatedAt)."""
        value = (record.get("properties") or {}).get(modified) or record.get("updatedAt")
        text = str(value or "")
        if text.isdigit():
            return int(text)
        try:
            return round(datetime.fromisoformat(text).timestamp() * 1000)
        except ValueError:
            raise MalformedResponseError(
                f"{self.http.label}: a search result without a readable {modified} ({text[:40]!r})"
            ) from None

    def _search_page(self, object_type, modified, lo, hi, properties, size, after) -> dict:
        body: dict[str, Any] = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": modified, "operator": "GTE", "value": str(lo)},
                        {"propertyName": modified, "operator": "LT", "value": str(hi)},
                    ]
                }
            ],
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": size,
        }
        if after is not None:
            body["after"] = after
        self.search_pages += 1
        return self.search_http.post(
            f"/crm/v3/objects/{object_type}/search", json=body, check=items_check("results")
        )

    def archived(
        self, object_type: str, properties: Sequence[str], page_size: int | None = None
    ) -> Iterator[list[dict]]:
        """Pages of archived records (`GET /crm/v3/objects/{type}?archived=true`): the list
        API is the only one that shows deletions; it has no time filter."""
        params = {
            "archived": "true",
            "limit": min(page_size or self.page_size, MAX_LIST_PAGE),
            "properties": ",".join(properties),
        }
        yield from self._after_pages(self.http, "GET", f"/crm/v3/objects/{object_type}", params)

    def associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list]:
        """id -> the ids of `to_type` records it is associated with (v4 batch read, 1,000 ids
        per call, following each id's own `paging.next.after`); ids with none are absent."""
        found: dict[str, list[str]] = {}
        path = f"/crm/v4/associations/{from_type}/{to_type}/batch/read"
        todo = [{"id": str(i)} for i in ids]
        while todo:
            batch, todo = todo[:MAX_ASSOCIATION_INPUTS], todo[MAX_ASSOCIATION_INPUTS:]
            body = self.http.post(path, json={"inputs": batch}, check=items_check("results"))
            for result in body["results"]:
                origin = str((result.get("from") or {}).get("id"))
                linked = [str(t["toObjectId"]) for t in result.get("to") or [] if "toObjectId" in t]
                found.setdefault(origin, []).extend(linked)
                after = (((result.get("paging") or {}).get("next")) or {}).get("after")
                if after:
                    todo.append({"id": origin, "after": after})
        return found

    def _after_pages(self, http, method, path, params) -> Iterator[list[dict]]:
        seen: set[str] = set()
        query = dict(params)
        while True:
            body = http.request(method, path, params=query, check=items_check("results"))
            if body["results"]:
                yield body["results"]
            after = (((body.get("paging") or {}).get("next")) or {}).get("after")
            if not after:
                return
            if after in seen:
                raise MalformedResponseError(f"the cursor {after!r} of {path} came back")
            seen.add(after)
            query["after"] = after
