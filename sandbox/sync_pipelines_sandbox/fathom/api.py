"""Fathom External API v1 emulator, on the generic paged-collection emulator (`paged.py`).

Routes (knob route in brackets), as Fathom's API reference documents them:
- `GET /external/v1/meetings` ["meetings"]: cursor paging (`cursor` in, `next_cursor` out,
  null on the last page, with `limit` and `items`), newest created first, 10 per page (Fathom
  takes no page size). Filters: `created_after` / `created_before` (ISO 8601, both strict),
  `recorded_by[]` (emails), `teams[]`, `calendar_invitees_domains[]`,
  `calendar_invitees_domains_type` (all | only_internal | one_or_more_external) and the
  deprecated `meeting_type` (internal | external); array parameters repeat once per value.
  `include_transcript`, `include_summary` (`default_summary`), `include_action_items` and
  `include_crm_matches` add those fields (null while the recording is still processing).
- `GET /external/v1/recordings/{recording_id}/transcript` ["transcript"] -> `{transcript}`
  and `/summary` ["summary"] -> `{summary}`; with `destination_url` they answer
  `{destination_url}` (the emulator posts nothing); 404 for a recording it does not have.
- Every route demands the `X-Api-Key` header (401 otherwise).

A deleted meeting (`FathomState.delete_meeting`) simply disappears. UNCONFIRMED (not in the
reference): the error body shape (here `{"error": message}`), what the recordings routes
answer while processing (here a null transcript/summary) and the listing's order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.fathom.data import (
    APP_URL,
    SANDBOX_FATHOM_API_KEY,
    FathomData,
    Recording,
    iso,
)
from sync_pipelines_sandbox.paged import (
    ApiError,
    Auth,
    Call,
    Collection,
    Cursor,
    PageSize,
    Plain,
    RouteTable,
)

PAGE_SIZE = 10
PREFIX = "/external/v1"
DOMAIN_TYPES = ("all", "only_internal", "one_or_more_external")
_ARRAY = re.compile(r"^(\w+)\[\d*\]$")
_SEP = "\n"  # how the repeated values of one array parameter reach the route


class FathomState:
    """The recordings served (shared with tests through `FathomData.of`) and the valid keys."""

    def __init__(self, company: Company, api_key: str = SANDBOX_FATHOM_API_KEY):
        self.data = FathomData.of(company)
        self.company = company
        self.valid_keys = {api_key}

    def set_api_key(self, api_key: str) -> None:
        """Make `api_key` the only valid one (a rotated or revoked key)."""
        self.valid_keys = {api_key}

    def delete_meeting(self, recording_id: int) -> None:
        self.data.delete(recording_id)


# ------------------------------------------------------------------ meetings
def _flag(call: Call, name: str) -> bool:
    return str(call.arg(name) or "").lower() in ("true", "1")


def _moment(call: Call, name: str) -> float | None:
    raw = call.arg(name)
    if raw in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        raise ApiError(400, f"'{name}' must be an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _values(call: Call, name: str) -> set[str]:
    raw = call.arg(f"{name}[]")
    return {v.strip().lower() for v in str(raw).split(_SEP) if v.strip()} if raw else set()


def _filters(call: Call) -> dict[str, Any]:
    kind = str(call.arg("calendar_invitees_domains_type") or "all")
    if kind not in DOMAIN_TYPES:
        raise ApiError(400, f"'calendar_invitees_domains_type' must be one of {DOMAIN_TYPES}")
    legacy = call.arg("meeting_type")
    if legacy not in (None, "", "all", "internal", "external"):
        raise ApiError(400, "'meeting_type' must be one of internal, external, all")
    if legacy == "internal":
        kind = "only_internal"
    elif legacy == "external":
        kind = "one_or_more_external"
    return {
        "after": _moment(call, "created_after"),
        "before": _moment(call, "created_before"),
        "recorded_by": _values(call, "recorded_by"),
        "teams": _values(call, "teams"),
        "domains": _values(call, "calendar_invitees_domains"),
        "kind": kind,
    }


def _external(recording: Recording) -> bool:
    return any(v.is_external for v in recording.invitees)


def _meetings(state: FathomState, f: Mapping[str, Any]) -> list[Recording]:
    found = state.data.created_between(f["after"], f["before"])
    if f["recorded_by"]:
        found = [r for r in found if r.recorder.email.lower() in f["recorded_by"]]
    if f["teams"]:
        found = [r for r in found if r.team.lower() in f["teams"]]
    if f["domains"]:
        found = [r for r in found if {v.domain.lower() for v in r.invitees} & f["domains"]]
    if f["kind"] != "all":
        found = [r for r in found if _external(r) == (f["kind"] == "one_or_more_external")]
    return found


def meeting_json(state: FathomState, recording: Recording, call: Call) -> dict:
    """A Meeting object; the content fields only when asked for (`include_*`)."""
    rid = recording.recording_id
    scheduled = recording.start - recording.start % 900
    invitees = [
        {
            "name": v.name,
            "matched_speaker_display_name": v.name,
            "email": v.email,
            "email_domain": v.domain,
            "is_external": v.is_external,
        }
        for v in recording.invitees
    ]
    body: dict[str, Any] = {
        "title": recording.title,
        "meeting_title": recording.title,
        "recording_id": rid,
        "url": f"{APP_URL}/calls/{rid}",
        "share_url": f"{APP_URL}/share/{rid:x}{recording.seed:x}",
        "created_at": iso(recording.created),
        "scheduled_start_time": iso(scheduled),
        "scheduled_end_time": iso(scheduled + max(1, -(scheduled - recording.end) // 900) * 900),
        "recording_start_time": iso(recording.start),
        "recording_end_time": iso(recording.end),
        "calendar_invitees_domains_type": (
            "one_or_more_external" if _external(recording) else "only_internal"
        ),
        "transcript_language": "en",
        "calendar_invitees": invitees,
        "recorded_by": {
            "name": recording.recorder.name,
            "email": recording.recorder.email,
            "email_domain": recording.recorder.domain,
            "team": recording.team,
        },
    }
    wanted = {
        "transcript": _flag(call, "include_transcript"),
        "default_summary": _flag(call, "include_summary"),
        "action_items": _flag(call, "include_action_items"),
    }
    if any(wanted.values()):
        content = state.data.content(recording)
        body.update({key: content[key] for key, asked in wanted.items() if asked})
    if _flag(call, "include_crm_matches"):
        body["crm_matches"] = {"contacts": [], "companies": [], "deals": [], "error": None}
    return body


MEETINGS = Collection(
    path=f"{PREFIX}/meetings",
    route="meetings",
    records=_meetings,
    render=lambda recording, call: meeting_json(call.state, recording, call),
    filters=_filters,
    paging=Cursor("cursor", report={"limit": "limit", "next_cursor": ("cursor", None)}),
    items_key="items",
    # Fathom takes no page size: this parameter is the emulator's own, and nothing sends it.
    size=PageSize("sandbox_page_size", default=PAGE_SIZE, most=PAGE_SIZE),
    order_by=("newest_first",),
)


# ------------------------------------------------------------------ recordings
def _recording(call: Call) -> Recording:
    raw = call.path_params["recording_id"]
    recording = call.state.data.recording(int(raw)) if raw.isdigit() else None
    if recording is None:
        raise ApiError(404, f"Recording {raw} not found")
    return recording


def _transcript(call: Call) -> dict:
    recording = _recording(call)
    if call.arg("destination_url"):
        return {"destination_url": call.arg("destination_url")}
    return {"transcript": call.state.data.content(recording)["transcript"]}


def _summary(call: Call) -> dict:
    recording = _recording(call)
    if call.arg("destination_url"):
        return {"destination_url": call.arg("destination_url")}
    return {"summary": call.state.data.content(recording)["default_summary"]}


RECORDING = f"{PREFIX}/recordings/{{recording_id}}"
TABLE = RouteTable(
    routes=(
        MEETINGS,
        Plain(path=f"{RECORDING}/transcript", route="transcript", handle=_transcript),
        Plain(path=f"{RECORDING}/summary", route="summary", handle=_summary),
    ),
    error_body=lambda status, message: {"error": message},
    faults={
        "429": "Rate limit exceeded",
        "401": "Invalid API key",
        "500": "Internal server error",
        "503": "Service unavailable",
    },
    auth=Auth("header", lambda state: state.valid_keys, "Invalid API key", header="x-api-key"),
)


class ArrayParams:
    """Keeps every value of a repeated array parameter (`teams[]=A&teams[]=B`, also
    `teams[0]=A`): joined into one `teams[]` value, since the routes read one value per name."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            arrays: dict[str, list[str]] = {}
            plain = []
            for key, value in pairs:
                match = _ARRAY.match(key)
                if match:
                    arrays.setdefault(f"{match.group(1)}[]", []).append(value)
                else:
                    plain.append((key, value))
            plain += [(key, _SEP.join(values)) for key, values in arrays.items()]
            scope = {**scope, "query_string": urlencode(plain).encode("latin-1")}
        await self.app(scope, receive, send)


EMULATOR = Emulator(
    name="fathom",
    port_offset=9,
    make_state=lambda company, options: FathomState(company),
    make_app=lambda state: ArrayParams(TABLE.app(state)),
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=lambda url, state: {"FATHOM_BASE_URL": url, "FATHOM_API_KEY": SANDBOX_FATHOM_API_KEY},
)
