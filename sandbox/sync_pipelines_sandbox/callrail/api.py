"""CallRail API v3 emulator: the listings the CallRail source reads, as apidocs.callrail.com
documents them.

- `GET /v3/a/{account_id}/calls.json` (knob route "calls"): offset pagination (`page` from
  1, `per_page` ≤ 250, answering `page`, `per_page`, `total_pages`, `total_records`) or, with
  `relative_pagination=true`, relative pagination (`offset` counts pages from 0; the answer
  has `has_next_page` and `next_page`, the absolute URL of the next page, null at the end).
  Default fields plus those named in `fields=` (transcription, note, tags, lead_status...:
  an unknown field is a 400). `GET /v3/a/{account_id}/calls/{id}.json` (route "call").
- `GET /v3/a/{account_id}/form_submissions.json` ("form_submissions") and
  `GET /v3/a/{account_id}/text-messages.json` ("text_messages", conversations with their
  `recent_messages`), offset pagination.
- `start_date`/`end_date`: ISO 8601 dates or date-times, both inclusive, on a call's start
  time, a form's submission time, a conversation's last message; a date alone or a time
  without an offset is in the account's time zone (UTC-05:00 here); a date-only `end_date`
  covers its whole day; no dates: the last 30 days; a range reaching past the 25-month
  retention is a 400. `sort`/`order` (default newest first).
- `Authorization: Token token="KEY"` (quoted or not), else 401; errors `{"error": "..."}`.
  A call marked as spam (`CallRailData.hide_call`) is absent from every listing: CallRail
  exposes no deletion otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from sync_pipelines import clock
from sync_pipelines_sandbox.callrail.data import (
    COMPANY_ID,
    COMPANY_NAME,
    SANDBOX_ACCOUNT_ID,
    SANDBOX_CALLRAIL_KEY,
    CallRailData,
    Item,
)
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.paged import ApiError, Auth, Call, Plain, RouteTable

ZONE = dt.timezone(dt.timedelta(hours=-5))
RETENTION_S = 25 * 30.5 * 86_400
DEFAULT_DAYS = 30
MAX_PER_PAGE = 250
DENIED = "HTTP Token: Access denied."
CALL_DEFAULT = [
    "answered",
    "business_phone_number",
    "customer_city",
    "customer_country",
    "customer_name",
    "customer_phone_number",
    "customer_state",
    "direction",
    "duration",
    "id",
    "recording",
    "recording_duration",
    "recording_player",
    "start_time",
    "tracking_phone_number",
    "voicemail",
    "agent_email",
]
CALL_EXTRA = frozenset(
    [
        "company_id",
        "company_name",
        "company_time_zone",
        "created_at",
        "lead_status",
        "note",
        "tags",
        "source",
        "value",
        "transcription",
        "person_id",
        "tracker_id",
        "timeline_url",
        "medium",
        "campaign",
        "formatted_customer_name",
        "formatted_customer_phone_number",
        "formatted_duration",
    ]
)


class CallRailState:
    """The account served (shared with tests through `CallRailData.of`) and the valid keys."""

    def __init__(self, company: Company):
        self.company = company
        self.keys = {SANDBOX_CALLRAIL_KEY}

    @property
    def store(self) -> CallRailData:
        return CallRailData.of(self.company)  # follows a world replaced for a benchmark

    def accepted(self) -> set[str]:
        return {f'Token token="{k}"' for k in self.keys} | {f"Token token={k}" for k in self.keys}


def stamp(epoch: float) -> str:
    """CallRail's times: ISO 8601 with milliseconds and the account's offset."""
    text = dt.datetime.fromtimestamp(epoch, ZONE).isoformat(timespec="milliseconds")
    return text


def _moment(call: Call, name: str, end: bool) -> float | None:
    raw = call.arg(name)
    if raw in (None, ""):
        return None
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            moment = dt.datetime.combine(day, dt.time(), ZONE)
            return (
                (moment + dt.timedelta(days=1)).timestamp() - 0.001 if end else moment.timestamp()
            )
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"Invalid {name}: use an ISO 8601 date or date and time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZONE)).timestamp()


def _window(call: Call) -> tuple[float, float]:
    """[start, end] (both inclusive) of a listing's date filters."""
    now = clock.now_epoch()
    start, end = _moment(call, "start_date", False), _moment(call, "end_date", True)
    if start is None and end is None:
        start = now - DEFAULT_DAYS * 86_400
    start = now - DEFAULT_DAYS * 86_400 if start is None else start
    end = now if end is None else end
    if start < now - RETENTION_S:
        raise ApiError(
            400, "Communication records are kept for 25 months: please revise your date range"
        )
    return start, end


def _selected(call: Call, kind: str) -> list[Item]:
    start, end = _window(call)
    order = call.arg("order") or "desc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "Invalid order: use asc or desc")
    found = list(call.state.store.between(kind, start, math.nextafter(end, math.inf)))
    found.sort(key=lambda item: (item.at, item.id), reverse=order == "desc")
    return found


def _size(call: Call) -> int:
    return call.int_arg("per_page", 100, 1, MAX_PER_PAGE)


def _offset_page(call: Call, kind: str, key: str, render: Callable[[Item, Call], dict]) -> dict:
    per_page = _size(call)
    page = call.int_arg("page", 1, 1, 10**9)
    found = _selected(call, kind)
    chunk = found[(page - 1) * per_page : page * per_page]
    return {
        "page": page,
        "per_page": per_page,
        "total_pages": math.ceil(len(found) / per_page),
        "total_records": len(found),
        key: [render(item, call) for item in chunk],
    }


def _relative_page(call: Call) -> dict:
    per_page = _size(call)
    offset = call.int_arg("offset", 0, 0, 10**9)
    found = _selected(call, "calls")
    chunk = found[offset * per_page : (offset + 1) * per_page]
    more = (offset + 1) * per_page < len(found)
    return {
        "per_page": per_page,
        "has_next_page": more,
        "next_page": call.link(offset=offset + 1, per_page=per_page) if more else None,
        "calls": [render_call(item, call) for item in chunk],
    }


def _fields(call: Call) -> set[str]:
    asked = {f.strip() for f in (call.arg("fields") or "").split(",") if f.strip()}
    unknown = asked - CALL_EXTRA - set(CALL_DEFAULT)
    if unknown:
        raise ApiError(400, f"Invalid field(s): {', '.join(sorted(unknown))}")
    return asked


def render_call(item: Item, call: Call) -> dict:
    f = item.fields
    full = {
        **{k: f.get(k) for k in CALL_DEFAULT if k in f},
        "id": item.id,
        "start_time": stamp(item.at),
        "recording_player": f"{f['recording']}/player" if f["recording"] else None,
        "company_id": COMPANY_ID,
        "company_name": COMPANY_NAME,
        "company_time_zone": "America/New_York",
        "created_at": stamp(item.at + f["duration"]),
        "lead_status": f["lead_status"],
        "note": f["note"],
        "tags": [{"name": t, "color": "gray1"} for t in f["tags"]],
        "source": f["source"],
        "value": f["value"],
        "transcription": f["transcription"],
        "person_id": "PER" + item.id[3:],
        "tracker_id": "TRK" + item.id[3:],
        "timeline_url": f"https://app.callrail.com/a/{SANDBOX_ACCOUNT_ID}/timeline/{item.id}",
        "medium": "cpc" if "Ads" in f["source"] else "organic",
        "campaign": None,
        "formatted_customer_name": f["customer_name"],
        "formatted_customer_phone_number": f["customer_phone_number"],
        "formatted_duration": f"{f['duration'] // 60}m {f['duration'] % 60}s",
    }
    keep = set(CALL_DEFAULT) | _fields(call)
    return {k: v for k, v in full.items() if k in keep}


def render_form(item: Item, call: Call) -> dict:
    f = item.fields
    return {
        "id": item.id,
        "company_id": COMPANY_ID,
        "person_id": "PER" + item.id[3:],
        "form_data": f["form_data"],
        "form_url": f["form_url"],
        "landing_page_url": f["landing_page_url"],
        "referrer": f["referrer"],
        "referring_url": None,
        "submitted_at": stamp(item.at),
        "first_form": f["first_form"],
        "customer_phone_number": f["customer_phone_number"],
        "customer_name": f["customer_name"],
        "formatted_customer_phone_number": f["customer_phone_number"],
        "formatted_customer_name": f["customer_name"],
        "source": f["source"],
        "keywords": None,
        "campaign": None,
        "medium": None,
        "lead_status": f["lead_status"],
    }


def render_conversation(item: Item, call: Call) -> dict:
    f = item.fields
    return {
        "id": item.id,
        "company_id": COMPANY_ID,
        "initial_tracker_id": f["initial_tracker_id"],
        "current_tracker_id": f["current_tracker_id"],
        "customer_name": f["customer_name"],
        "customer_phone_number": f["customer_phone_number"],
        "initial_tracking_number": f["initial_tracking_number"],
        "current_tracking_number": f["current_tracking_number"],
        "last_message_at": stamp(item.at),
        "state": f["state"],
        "company_time_zone": "America/New_York",
        "formatted_customer_phone_number": f["customer_phone_number"],
        "formatted_customer_name": f["customer_name"],
        "recent_messages": [
            {
                "direction": m["direction"],
                "content": m["content"],
                "created_at": stamp(m["created_at"]),
            }
            for m in f["messages"]
        ],
    }


def _account(call: Call) -> None:
    if call.path_params["account_id"] != SANDBOX_ACCOUNT_ID:
        raise ApiError(404, "Not found")


def _calls(call: Call) -> dict:
    _account(call)
    _fields(call)
    if (call.arg("relative_pagination") or "false").lower() == "true":
        return _relative_page(call)
    return _offset_page(call, "calls", "calls", render_call)


def _one_call(call: Call) -> dict:
    _account(call)
    item = call.state.store.one("calls", call.path_params["call_id"])
    if item is None:
        raise ApiError(404, "Not found")
    return render_call(item, call)


def _forms(call: Call) -> dict:
    _account(call)
    return _offset_page(call, "form_submissions", "form_submissions", render_form)


def _texts(call: Call) -> dict:
    _account(call)
    return _offset_page(call, "text_messages", "conversations", render_conversation)


BASE = "/v3/a/{account_id}"
TABLE = RouteTable(
    routes=(
        Plain(f"{BASE}/calls.json", "calls", _calls),
        Plain(f"{BASE}/calls/{{call_id}}.json", "call", _one_call),
        Plain(f"{BASE}/form_submissions.json", "form_submissions", _forms),
        Plain(f"{BASE}/text-messages.json", "text_messages", _texts),
    ),
    error_body=lambda status, message: {"error": message},
    faults={
        "429": "Too Many Requests: the account's hourly API limit was exceeded",
        "401": DENIED,
        "500": "Internal Server Error",
        "503": "Service Unavailable",
    },
    auth=Auth("header", lambda state: state.accepted(), DENIED),
)

EMULATOR = Emulator(
    name="callrail",
    port_offset=12,
    make_state=lambda company, options: CallRailState(company),
    make_app=TABLE.app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=lambda url, state: {
        "CALLRAIL_BASE_URL": url,
        "CALLRAIL_API_KEY": SANDBOX_CALLRAIL_KEY,
        "CALLRAIL_ACCOUNT_ID": SANDBOX_ACCOUNT_ID,
    },
)
