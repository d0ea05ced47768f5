"""Tempo Cloud REST v4 emulator: `GET /4/worklogs` as the Tempo source calls it.

Bearer-token auth, offset paging (`offset`, `limit` ≤ 5000) with `metadata.next` as an
absolute URL (pointing at this emulator), filters `from`/`to` (work date, inclusive) and
`updatedFrom` (date or UTC date-time, inclusive; Tempo has no updated-until), results in
worklog id order, and Tempo's `{"errors": [{"message": ...}]}` error bodies. Issues are
referenced by Jira's numeric id only, as in Tempo's v4 API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.jira.data import SITE_URL
from sync_pipelines_sandbox.tempo.data import SANDBOX_TEMPO_TOKEN, TempoWorklogs, Worklog

DEFAULT_LIMIT, MAX_LIMIT = 50, 5000


class TempoError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.body = {"errors": [{"message": message}]}


class TempoState:
    """The worklogs served (shared with tests through `TempoWorklogs.of`) and the valid tokens."""

    def __init__(self, company: Company, token: str = SANDBOX_TEMPO_TOKEN):
        self.store = TempoWorklogs.of(company)
        self.valid_tokens = {token}

    def set_token(self, token: str) -> None:
        self.valid_tokens = {token}

    def edit_worklog(
        self, worklog_id: int, description: str | None = None, seconds: int | None = None
    ) -> Worklog:
        return self.store.edit_worklog(worklog_id, description, seconds)


def _stamp(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _worklog_json(w: Worklog, api: str) -> dict:
    return {
        "self": f"{api}/4/worklogs/{w.id}",
        "tempoWorklogId": w.id,
        "issue": {"self": f"{SITE_URL}/rest/api/2/issue/{w.issue.id}", "id": int(w.issue.id)},
        "timeSpentSeconds": w.seconds,
        "billableSeconds": w.billable_seconds,
        "startDate": w.start_date,
        "startTime": w.start_time,
        "description": w.description,
        "createdAt": _stamp(w.created),
        "updatedAt": _stamp(w.updated),
        "author": {
            "self": f"{SITE_URL}/rest/api/2/user?accountId={w.author}",
            "accountId": w.author,
        },
        "attributes": {"self": f"{api}/4/worklogs/{w.id}/work-attribute-values", "values": []},
    }


def _date(params: Mapping[str, str], name: str) -> dt.date | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise TempoError(400, f"'{name}' must be a date in the format yyyy-MM-dd") from None


def _updated_from(params: Mapping[str, str]) -> int | None:
    value = params.get("updatedFrom")
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return int(dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC).timestamp())
        except ValueError:
            continue
    raise TempoError(
        400, "'updatedFrom' must be in the format yyyy-MM-dd or yyyy-MM-dd'T'HH:mm:ss'Z'"
    )


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(params.get(name, default))
    except ValueError:
        raise TempoError(400, f"'{name}' must be an integer") from None
    if not low <= value <= high:
        raise TempoError(400, f"'{name}' must be between {low} and {high}")
    return value


def list_worklogs(state: TempoState, params: Mapping[str, str], api: str) -> dict:
    offset = _int(params, "offset", 0, 0, 10**9)
    limit = _int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    date_from, date_to = _date(params, "from"), _date(params, "to")
    updated_from = _updated_from(params)
    matching = [
        w
        for w in state.store.ordered()
        if (updated_from is None or w.updated >= updated_from)
        and (date_from is None or w.start_date >= date_from.isoformat())
        and (date_to is None or w.start_date <= date_to.isoformat())
    ]
    page = matching[offset : offset + limit]
    query = {k: v for k, v in params.items() if k not in ("offset", "limit")}
    metadata: dict[str, Any] = {"count": len(page), "offset": offset, "limit": limit}
    if offset + limit < len(matching):
        metadata["next"] = f"{api}/4/worklogs?" + urlencode(
            {**query, "offset": offset + limit, "limit": limit}
        )
    if offset > 0:
        metadata["previous"] = f"{api}/4/worklogs?" + urlencode(
            {**query, "offset": max(0, offset - limit), "limit": limit}
        )
    self_url = f"{api}/4/worklogs" + (f"?{urlencode(dict(params))}" if params else "")
    return {
        "self": self_url,
        "metadata": metadata,
        "results": [_worklog_json(w, api) for w in page],
    }


def make_app(state: TempoState) -> Starlette:
    async def worklogs(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            if token not in state.valid_tokens:
                raise TempoError(401, "Authentication failed: the access token is invalid")
            api = str(request.base_url).rstrip("/")
            body = await run_in_threadpool(list_worklogs, state, dict(request.query_params), api)
            return JSONResponse(body)
        except TempoError as exc:
            return JSONResponse(exc.body, status_code=exc.status)

    return Starlette(routes=[Route("/4/worklogs", worklogs, methods=["GET"])])


def _route_of(scope: Scope) -> str:
    return scope["path"].removeprefix("/4/").strip("/") or scope["path"]


_FAULTS = {
    "429": (429, {"errors": [{"message": "Rate limit exceeded, retry later"}]}),
    "401": (401, {"errors": [{"message": "Authentication failed: the access token is invalid"}]}),
    "500": (500, {"errors": [{"message": "Internal server error"}]}),
    "503": (503, {"errors": [{"message": "Service unavailable"}]}),
}

EMULATOR = Emulator(
    name="tempo",
    port_offset=5,
    make_state=lambda company, options: TempoState(company),
    make_app=make_app,
    route_of=_route_of,
    fault_body=_FAULTS.__getitem__,
    client_url=lambda root: root,
    env=lambda url, state: {"TEMPO_BASE_URL": url, "TEMPO_API_TOKEN": SANDBOX_TEMPO_TOKEN},
)
