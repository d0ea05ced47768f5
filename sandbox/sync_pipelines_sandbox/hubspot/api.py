"""The HubSpot CRM v3/v4 emulator: search, list (with archived), properties, associations, owners.

Follows HubSpot's reference: Bearer private-app tokens; `POST /crm/v3/objects/{type}/search`
with one filter group on the modified date (epoch ms or ISO), one ascending sort, `limit` ≤ 200
and `after`, answering `{total, results, paging.next.after}` and a 400 for an `after` at or past
10,000 (the search API's cap); `GET /crm/v3/objects/{type}` (`limit` ≤ 100, `archived=true`
lists only archived records with `archivedAt`); `GET /crm/v3/properties/{type}` (custom ones
without `hubspotDefined`); `POST /crm/v4/associations/{from}/{to}/batch/read` (either
direction: a company's contacts as well as a contact's company, with HubSpot's directional
typeIds; `HubspotData.associate/dissociate` change links); `GET /crm/v3/owners`. Errors are `{"status": "error", "message", "correlationId", "category"}`
(401 INVALID_AUTHENTICATION, 429 RATE_LIMITS with policyName). `state.bare_429s` answers the
next searches 429 without Retry-After, as HubSpot sometimes does; `state.search_hooks` are
called with (object, the page's records) after each search page is computed, so a test can
edit or archive records while a client pages through a query (`after` is an offset into the
live result set, as HubSpot's: such edits shift the records behind them).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import datetime

from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.hubspot.data import (
    CUSTOM,
    OBJECTS,
    SANDBOX_HUBSPOT_TOKEN,
    HubRecord,
    HubspotData,
    iso,
    modified_property,
)
from sync_pipelines_sandbox.paged import ApiError, Auth, Call, Plain, RouteTable

SEARCH_CAP = 10_000
ASSOCIATION_TYPE_IDS = {("contacts", "companies"): 1, ("companies", "contacts"): 2,
                        ("deals", "contacts"): 3, ("contacts", "deals"): 4,
                        ("deals", "companies"): 5, ("companies", "deals"): 6,
                        ("tickets", "contacts"): 16, ("tickets", "companies"): 26}  # fmt: skip
OPERATORS = {"GTE", "GT", "LT", "LTE", "EQ", "BETWEEN"}
_lock = threading.Lock()


def _object(call: Call) -> str:
    name = call.path_params["object_type"].lower()
    if name not in OBJECTS:
        raise ApiError(400, f"Unable to infer object type from: {name}")
    return name


def _epoch(value) -> float:
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text) / 1000
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ApiError(400, f"{text} is not a valid datetime value") from None


def _bounds(obj: str, groups) -> tuple[float, float]:
    """[lo, hi) from the one filter group on the object's modified date."""
    lo, hi = float("-inf"), float("inf")
    if not groups:
        return lo, hi
    if not isinstance(groups, list) or len(groups) > 1:
        raise ApiError(400, "the sandbox supports one filter group")
    for f in groups[0].get("filters") or []:
        if f.get("propertyName") != modified_property(obj) or f.get("operator") not in OPERATORS:
            raise ApiError(400, f"unsupported filter {f} (the sandbox filters by "
                           f"{modified_property(obj)})")  # fmt: skip
        op, v = f["operator"], _epoch(f.get("value"))
        if op in ("GTE", "BETWEEN", "EQ"):
            lo = max(lo, v)
        if op == "GT":
            lo = max(lo, v + 0.001)
        if op == "LT":
            hi = min(hi, v)
        if op in ("LTE", "EQ"):
            hi = min(hi, v + 0.001)
        if op == "BETWEEN":
            hi = min(hi, _epoch(f.get("highValue")) + 0.001)
    return lo, hi


def _after(call: Call) -> int:
    raw = call.arg("after")
    if raw in (None, ""):
        return 0
    if not str(raw).isdigit():
        raise ApiError(400, f"after: {raw} is not a valid paging cursor")
    return int(raw)


def render(record: HubRecord, wanted: list[str] | None) -> dict:
    props = record.properties
    names = wanted if wanted else ["hs_object_id", "createdate", modified_property(record.obj)]
    out = {
        "id": record.id,
        "properties": {n: props.get(n) for n in names},
        "createdAt": iso(record.created),
        "updatedAt": iso(record.updated),
        "archived": record.archived,
    }
    if record.archived:
        out["archivedAt"] = iso(record.archived_at)
    return out


def search(call: Call) -> dict:
    data: HubspotData = call.state
    obj = _object(call)
    with _lock:
        if data.bare_429s > 0:
            data.bare_429s -= 1
            raise ApiError(429, "You have reached your secondly limit.")
    limit = call.int_arg("limit", 10, 1, 200)
    after = _after(call)
    if after >= SEARCH_CAP:
        raise ApiError(400, f"paging past {SEARCH_CAP} results is not supported (after={after})")
    sorts = call.body.get("sorts") or []
    for sort in sorts if isinstance(sorts, list) else [sorts]:
        name = sort.get("propertyName") if isinstance(sort, dict) else str(sort)
        direction = sort.get("direction", "ASCENDING") if isinstance(sort, dict) else "ASCENDING"
        if name != modified_property(obj) or direction != "ASCENDING" or len(sorts) > 1:
            raise ApiError(400, f"the sandbox sorts only by {modified_property(obj)} ASCENDING")
    lo, hi = _bounds(obj, call.body.get("filterGroups"))
    total, records = data.window(obj, lo, hi, after)
    page = list(itertools.islice(records, limit))
    for hook in list(data.search_hooks):
        hook(obj, page)
    if after == 0:
        with _lock:
            data.totals.append((obj, total))
    body = {"total": total, "results": [render(r, call.body.get("properties")) for r in page]}
    if page and after + len(page) < total:
        nxt = str(after + len(page))
        body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return body


def list_objects(call: Call) -> dict:
    data: HubspotData = call.state
    obj = _object(call)
    limit, after = call.int_arg("limit", 10, 1, 100), _after(call)
    wanted = [p for p in (call.query.get("properties") or "").split(",") if p]
    if call.query.get("archived", "false").lower() == "true":
        records = data.archived(obj)
        page, nxt = records[after : after + limit], after + limit
        more = nxt < len(records)
    else:
        live = (r for r in (data.record(obj, i) for i in range(after, data.count(obj))))
        page = []
        for r in live:
            if len(page) == limit:
                break
            if not r.archived:
                page.append(r)
        nxt = page[-1].i + 1 if page else data.count(obj)
        more = nxt < data.count(obj)
    body: dict = {"results": [render(r, wanted) for r in page]}
    if more and page:
        body["paging"] = {"next": {"after": str(nxt), "link": f"?after={nxt}"}}
    return body


def properties(call: Call) -> dict:
    data: HubspotData = call.state
    obj = _object(call)
    sample = data.record(obj, 0)
    results = []
    for name in sample.properties:
        dated = name in ("createdate", "closedate", modified_property(obj)) or "time" in name
        prop = {"name": name, "label": name.replace("_", " ").title(), "groupName": "info",
                "type": "datetime" if dated else "string", "fieldType": "text"}  # fmt: skip
        if name != CUSTOM.get(obj):
            prop["hubspotDefined"] = True
        results.append(prop)
    return {"results": results}


def associations(call: Call) -> dict:
    data: HubspotData = call.state
    source = call.path_params["from_type"].lower()
    target = call.path_params["to_type"].lower()
    for name in (source, target):
        if name not in OBJECTS:
            raise ApiError(400, f"Unable to infer object type from: {name}")
    inputs = call.body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) > 1000:
        raise ApiError(400, "inputs must be a list of at most 1000 ids")
    type_id = ASSOCIATION_TYPE_IDS.get((source, target), 200)
    results = []
    for item in inputs:
        rid = str(item.get("id", ""))
        linked = (data.associations_of(source, rid) or {}).get(target, [])
        if linked:
            to = [{"toObjectId": int(t), "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]} for t in linked]  # fmt: skip
            results.append({"from": {"id": rid}, "to": to})
    now = iso(data.world.end)
    return {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}


def owners(call: Call) -> dict:
    data: HubspotData = call.state
    limit, after = call.int_arg("limit", 100, 1, 500), _after(call)
    archived = call.query.get("archived", "false").lower() == "true"
    everyone = [] if archived else data.owners()
    body: dict = {"results": everyone[after : after + limit]}
    if after + limit < len(everyone):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return body


CATEGORIES = {401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES", 404: "OBJECT_NOT_FOUND",
              429: "RATE_LIMITS", 400: "VALIDATION_ERROR"}  # fmt: skip


def error_body(status: int, message: str) -> dict:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": CATEGORIES.get(status, "INTERNAL_ERROR")}  # fmt: skip
    if status == 429:
        body.update(errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING")
    return body


AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
TABLE = RouteTable(
    routes=(
        Plain("/crm/v3/objects/{object_type}/search", "search", search, method="POST"),
        Plain("/crm/v3/objects/{object_type}", "list", list_objects),
        Plain("/crm/v3/properties/{object_type}", "properties", properties),
        Plain(
            "/crm/v4/associations/{from_type}/{to_type}/batch/read",
            "associations",
            associations,
            method="POST",
        ),
        Plain("/crm/v3/owners", "owners", owners),
    ),
    error_body=error_body,
    faults={
        "429": "You have reached your ten_secondly_rolling limit.",
        "401": AUTH_MESSAGE,
        "500": "internal error",
        "503": "Service Unavailable",
    },
    auth=Auth("bearer", lambda state: state.tokens, AUTH_MESSAGE),
)
EMULATOR = Emulator(
    name="hubspot",
    port_offset=11,
    make_state=lambda company, options: HubspotData(company),
    make_app=TABLE.app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=lambda url, state: {"HUBSPOT_BASE_URL": url, "HUBSPOT_ACCESS_TOKEN": SANDBOX_HUBSPOT_TOKEN},
)
