"""Gong REST v2 emulator: the calls listings and transcripts a Gong source reads.

Routes (knob route in brackets), from Gong's public API reference:
- `POST /v2/calls/extensive` [extensive]: body {filter{fromDateTime, toDateTime, callIds,
  primaryUserIds, workspaceId}, contentSelector, cursor}; answers {requestId, records{
  totalRecords, currentPageSize, currentPageNumber, cursor?}, calls[{metaData, parties?,
  context?}]}. `contentSelector` is honoured: `exposedFields.parties` adds the parties
  (speakerId, affiliation Internal/External, emailAddress, userId...), `context` "Basic" adds
  the CRM links and "Extended" their fields too (the account's and opportunity's names).
- `POST /v2/calls/transcript` [transcript]: body {filter{fromDateTime, toDateTime, callIds},
  cursor}; answers {requestId, records, callTranscripts[{callId, transcript[{speakerId, topic,
  sentences[{start, end, text}]}]}]} (start/end in ms from the call's start).
- `GET /v2/calls` [calls]: query fromDateTime, toDateTime, workspaceId, cursor; answers
  {requestId, records, calls[metaData]} (what a reconciliation needs: ids and start times).

Conventions: Basic auth `base64(accessKey:accessKeySecret)` (else 401); fromDateTime inclusive,
toDateTime exclusive, both on the call's start, ISO-8601 with an offset or Z (else 400);
`started` is rendered in the call's own zone (e.g. -08:00, +05:30); pages of `page_size` (Gong:
100) in start order, an opaque cursor bound to the request's filters in `records.cursor` while
more remain (absent on the last page); errors as {requestId, errors: [message]}; a filter that
matches no call answers 404 "No calls found corresponding to the provided filters". A deleted
call (`GongState.delete_call`) is simply gone.
Not ready (transcription running): the call is listed; `/v2/calls/transcript` answers it with an
empty `transcript` list (`not_ready_style` "empty", default) or leaves it out ("absent").
UNCONFIRMED (the reference does not say): which of the two Gong does, its 401 body, whether
`currentPageNumber` counts from 0 (here it does), the units of sentence start/end (here ms).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.gong.data import (
    APP_URL,
    SANDBOX_GONG_ACCESS_KEY,
    SANDBOX_GONG_ACCESS_KEY_SECRET,
    WORKSPACE_ID,
    GongCall,
    GongData,
)
from sync_pipelines_sandbox.paged import (
    ApiError,
    Auth,
    Call,
    Plain,
    RouteTable,
    decode_cursor,
    encode_cursor,
)

NO_CALLS = "No calls found corresponding to the provided filters"
UNAUTHORIZED = "The request is unauthorized: check the access key and its secret"
PAGE_SIZE = 100
CONTEXTS = ("None", "Basic", "Extended")
_request_ids = itertools.count(1)


class GongState:
    """The calls served (shared with tests through `GongData.of`), the valid key pairs, the
    page size and how a call not transcribed yet is answered."""

    def __init__(self, company: Company, page_size: int = PAGE_SIZE):
        self.data = GongData.of(company)
        self.credentials = {(SANDBOX_GONG_ACCESS_KEY, SANDBOX_GONG_ACCESS_KEY_SECRET)}
        self.page_size = page_size
        self.not_ready_style = "empty"  # or "absent"

    def set_credentials(self, access_key: str, secret: str) -> None:
        """Make this key pair the only valid one (a rotated or revoked key)."""
        self.credentials = {(access_key, secret)}

    def delete_call(self, call_id: str) -> GongCall:
        """Someone deletes the call in Gong: it leaves every listing, no trace kept."""
        return self.data.delete(call_id)


def request_id() -> str:
    return f"sbx{next(_request_ids):015d}"


def error_body(status: int, message: str) -> dict:
    return {"requestId": request_id(), "errors": [message]}


# ------------------------------------------------------------------ filters
def _moment(name: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ApiError(400, f"{name} must be an ISO-8601 date-time with a time zone")
    return parsed.timestamp()


def _ids(value: Any, name: str) -> set[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise ApiError(400, f"{name} must be a list of ids")
    return {str(v) for v in value}


def _matching(call: Call, filters: Mapping[str, Any]) -> list[GongCall]:
    """The calls a filter selects, in start order: [fromDateTime, toDateTime) on the start,
    then callIds, primaryUserIds and workspaceId when given."""
    start = _moment("fromDateTime", filters.get("fromDateTime"))
    end = _moment("toDateTime", filters.get("toDateTime"))
    call_ids = _ids(filters.get("callIds"), "callIds")
    hosts = _ids(filters.get("primaryUserIds"), "primaryUserIds")
    workspace = filters.get("workspaceId")
    found = call.state.data.between(start, end)
    return [
        c
        for c in found
        if (call_ids is None or c.id in call_ids)
        and (hosts is None or c.host.user_id in hosts)
        and workspace in (None, "", WORKSPACE_ID)
    ]


def _body_filter(call: Call) -> Mapping[str, Any]:
    filters = call.body.get("filter")
    if not isinstance(filters, dict):
        raise ApiError(400, "filter is required")
    return filters


def _paged(call: Call, records: list, items: str, render: Callable[[Any], Any]) -> dict:
    """One page of `records` (404 when there is none), with Gong's `records` facts."""
    if not records:
        raise ApiError(404, NO_CALLS)
    size = call.state.page_size
    fingerprint = call.fingerprint(("cursor",))
    token = call.arg("cursor")
    offset = decode_cursor(str(token), fingerprint, "cursor") if token else 0
    page = records[offset : offset + size]
    facts: dict[str, Any] = {
        "totalRecords": len(records),
        "currentPageSize": len(page),
        "currentPageNumber": offset // size,
    }
    if offset + size < len(records):
        facts["cursor"] = encode_cursor(offset + size, fingerprint)
    return {"requestId": request_id(), "records": facts, items: [render(r) for r in page]}


# ------------------------------------------------------------------ rendering
def meta_data(call: GongCall) -> dict:
    return {
        "id": call.id,
        "url": APP_URL + call.id,
        "title": call.title,
        "scheduled": call.started_iso(),
        "started": call.started_iso(),
        "duration": call.duration_s,
        "primaryUserId": call.host.user_id,
        "direction": call.direction,
        "system": call.system,
        "scope": "External" if call.external else "Internal",
        "media": call.media,
        "language": "eng",
        "workspaceId": WORKSPACE_ID,
        "sdrDisposition": None,
        "clientUniqueId": None,
        "customData": None,
        "purpose": None,
        "meetingUrl": f"https://meet.example/{call.id[-8:]}",
        "isPrivate": call.private,
        "calendarEventId": None,
    }


def parties(data: GongData, call: GongCall) -> list[dict]:
    spoke = {m["speakerId"] for m in data.transcript(call)}
    out = []
    for index, party in enumerate(call.parties):
        speaker = data.speaker_id(call, index)
        out.append(
            {
                "id": f"{int(call.id) % 10**9}{index:03d}",
                "emailAddress": party.email,
                "name": party.name,
                "title": party.title or None,
                "userId": party.user_id,
                "speakerId": speaker if speaker in spoke or not spoke else None,
                "affiliation": "Internal" if party.internal else "External",
                "methods": ["Invitee", "Attendee"],
            }
        )
    return out


def context(call: GongCall, extended: bool) -> list[dict]:
    """The CRM links: Salesforce Account/Opportunity, or HubSpot Company/Deal (UNCONFIRMED:
    the object types and field names Gong reports for HubSpot)."""
    crm = call.crm
    if crm is None:
        return []
    hubspot = crm.system == "HubSpot"
    objects = [
        ("Company" if hubspot else "Account", crm.account_id,
         [("name" if hubspot else "Name", crm.account)]),
        ("Deal" if hubspot else "Opportunity", crm.opportunity_id,
         [("dealname" if hubspot else "Name", crm.opportunity),
          ("dealstage" if hubspot else "StageName", crm.stage)]),
    ]  # fmt: skip
    rendered = []
    for kind, object_id, fields in objects:
        entry: dict[str, Any] = {"objectType": kind, "objectId": object_id}
        if extended:
            entry["fields"] = [{"name": n, "value": v} for n, v in fields]
            entry["timing"] = "Now"
        rendered.append(entry)
    return [{"system": crm.system, "objects": rendered}]


def _selector(call: Call) -> tuple[bool, str]:
    selector = call.body.get("contentSelector") or {}
    if not isinstance(selector, dict):
        raise ApiError(400, "contentSelector must be an object")
    level = selector.get("context") or "None"
    if level not in CONTEXTS:
        raise ApiError(400, f"contentSelector.context must be one of {', '.join(CONTEXTS)}")
    exposed = selector.get("exposedFields") or {}
    return bool(isinstance(exposed, dict) and exposed.get("parties")), level


# ------------------------------------------------------------------ routes
def _extensive(call: Call) -> dict:
    want_parties, level = _selector(call)
    data = call.state.data

    def render(found: GongCall) -> dict:
        out: dict[str, Any] = {"metaData": meta_data(found)}
        if level != "None":
            out["context"] = context(found, level == "Extended")
        if want_parties:
            out["parties"] = parties(data, found)
        return out

    return _paged(call, _matching(call, _body_filter(call)), "calls", render)


def _transcripts(call: Call) -> dict:
    state: GongState = call.state
    found = _matching(call, _body_filter(call))
    if state.not_ready_style == "absent":
        ready = [c for c in found if not c.processing()]
        if found and not ready:
            return {"requestId": request_id(), "records": {"totalRecords": 0,
                    "currentPageSize": 0, "currentPageNumber": 0}, "callTranscripts": []}  # fmt: skip
        found = ready
    render = lambda c: {"callId": c.id, "transcript": state.data.transcript(c)}
    return _paged(call, found, "callTranscripts", render)


def _calls(call: Call) -> dict:
    return _paged(call, _matching(call, call.query), "calls", meta_data)


TABLE = RouteTable(
    routes=(
        Plain("/v2/calls/extensive", "extensive", _extensive, method="POST"),
        Plain("/v2/calls/transcript", "transcript", _transcripts, method="POST"),
        Plain("/v2/calls", "calls", _calls),
    ),
    error_body=error_body,
    faults={
        "429": "API rate limit exceeded: 3 calls per second",
        "401": UNAUTHORIZED,
        "500": "Internal server error",
        "503": "Service unavailable",
    },
    auth=Auth("basic", lambda state: state.credentials, UNAUTHORIZED),
)


def env(url: str, state: GongState) -> dict[str, str]:
    return {
        "GONG_BASE_URL": url,
        "GONG_ACCESS_KEY": SANDBOX_GONG_ACCESS_KEY,
        "GONG_ACCESS_KEY_SECRET": SANDBOX_GONG_ACCESS_KEY_SECRET,
    }


EMULATOR = Emulator(
    name="gong",
    port_offset=8,
    make_state=lambda company, options: GongState(company),
    make_app=TABLE.app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=env,
)
