"""Tempo Cloud REST v4 emulator: `GET /4/worklogs` as the Tempo source calls it, and
`GET /4/worklogs/{id}` (knob route "worklog"), which answers 404 for a deleted worklog as
Tempo documents.

Bearer-token auth, offset paging (`offset`, `limit` ≤ 5000) with `metadata.next` as an
absolute URL (pointing at this emulator), filters `from`/`to` (work date, inclusive) and
`updatedFrom` (date or UTC date-time, inclusive; Tempo has no updated-until), results in
worklog id order, and Tempo's `{"errors": [{"message": ...}]}` error bodies. A deleted
worklog (`TempoState.delete_worklog`) leaves no trace: it is only absent. Issues are
referenced by Jira's numeric id only, as in Tempo's v4 API. Declared on the generic paged
collection emulator (`sync_pipelines_sandbox.paged`): this module is Tempo's data mapping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.jira.data import SITE_URL
from sync_pipelines_sandbox.paged import (
    ApiError,
    Auth,
    Call,
    Collection,
    OffsetLimit,
    PageSize,
    Plain,
    RouteTable,
    Since,
)
from sync_pipelines_sandbox.tempo.data import SANDBOX_TEMPO_TOKEN, TempoWorklogs, Worklog

DENIED = "Authentication failed: the access token is invalid"


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

    def delete_worklog(self, worklog_id: int) -> Worklog:
        return self.store.delete_worklog(worklog_id)


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


def _dates(call: Call) -> dict[str, str | None]:
    """The work-date filters `from` and `to` (inclusive), as ISO dates."""
    dates = {}
    for name in ("from", "to"):
        value = call.arg(name)
        try:
            dates[name] = dt.date.fromisoformat(value).isoformat() if value else None
        except ValueError:
            raise ApiError(400, f"'{name}' must be a date in the format yyyy-MM-dd") from None
    return dates


def _worklogs(state: TempoState, dates: Mapping[str, str | None]) -> list[Worklog]:
    low, high = dates["from"], dates["to"]
    return [
        w
        for w in state.store.ordered()
        if (low is None or w.start_date >= low) and (high is None or w.start_date <= high)
    ]


def _epoch(value: str) -> int:
    """`updatedFrom`: a UTC date-time or a date (its midnight, UTC)."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return int(dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC).timestamp())
        except ValueError:
            continue
    raise ValueError(value)


WORKLOGS = Collection(
    path="/4/worklogs",
    route="worklogs",
    records=_worklogs,
    render=lambda worklog, call: _worklog_json(worklog, call.base),
    filters=_dates,
    since=Since(
        "updatedFrom",
        _epoch,
        field="updated",
        expects="in the format yyyy-MM-dd or yyyy-MM-dd'T'HH:mm:ss'Z'",
    ),
    paging=OffsetLimit(
        "offset",
        report={
            "self": "self",
            "metadata.count": "count",
            "metadata.offset": "offset",
            "metadata.limit": "limit",
            "metadata.next": "next",
            "metadata.previous": "previous",
        },
    ),
    items_key="results",
    size=PageSize("limit", default=50, most=5000),
)

def _one_worklog(call: Call) -> dict:
    """`GET /4/worklogs/{id}`: the worklog, or Tempo's 404 once it was deleted."""
    raw = call.path_params["worklog_id"]
    worklog = call.state.store.worklog(int(raw)) if raw.isdigit() else None
    if worklog is None:
        raise ApiError(404, f"Worklog with id {raw} does not exist")
    return _worklog_json(worklog, call.base)


WORKLOG = Plain(path="/4/worklogs/{worklog_id}", route="worklog", handle=_one_worklog)

TABLE = RouteTable(
    routes=(WORKLOGS, WORKLOG),
    error_body=lambda status, message: {"errors": [{"message": message}]},
    faults={
        "429": "Rate limit exceeded, retry later",
        "401": DENIED,
        "500": "Internal server error",
        "503": "Service unavailable",
    },
    auth=Auth("bearer", lambda state: state.valid_tokens, DENIED),
)

EMULATOR = Emulator(
    name="tempo",
    port_offset=5,
    make_state=lambda company, options: TempoState(company),
    make_app=TABLE.app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=lambda url, state: {"TEMPO_BASE_URL": url, "TEMPO_API_TOKEN": SANDBOX_TEMPO_TOKEN},
)
