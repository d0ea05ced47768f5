"""The generic paged-collection emulator, through a throw-away vendor serving the company's
people: one route per paging style, each walked to the end the way its client would."""

from __future__ import annotations

import datetime as dt
import json
import math
import random

import pytest
from starlette.testclient import TestClient

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.knobs import Knobs, KnobsMiddleware
from sync_pipelines_sandbox.paged import (
    ApiError,
    Auth,
    Collection,
    Cursor,
    NextLink,
    OffsetLimit,
    PageSize,
    PageToken,
    Plain,
    RouteTable,
    Since,
)

TOKEN = "people-token"
DENIED = "invalid credentials"
ITEMS = {
    "gong": "calls",
    "fathom": "items",
    "hubspot": "results",
    "tempo": "results",
    "callrail": "calls",
    "gmail": "messages",
}
CURSOR_PARAM = {"gong": "cursor", "fathom": "cursor", "hubspot": "after", "gmail": "pageToken"}
CURSOR_STYLES = tuple(CURSOR_PARAM)
STYLES = CURSOR_STYLES + ("tempo", "callrail")


class People:
    """The vendor's state: the company's people, each updated at some hour (three per hour,
    in an order unrelated to their ids)."""

    def __init__(self, company: Company):
        start = company.span()[0]
        people = list(company.people)
        random.Random(3).shuffle(people)
        self.records = [
            {"id": p.user_id, "name": p.name, "updated": start + (n // 3) * 3600}
            for n, p in enumerate(people)
        ]
        self.tokens = {TOKEN}


def _since(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def _people(style: str, paging, size: PageSize, method: str = "GET", **more) -> Collection:
    return Collection(
        path=f"/{style}",
        route=style,
        method=method,
        records=lambda state, filters: reversed(state.records),  # any order: served sorted
        render=lambda person, call: {"id": person["id"], "name": person["name"]},
        paging=paging,
        items_key=ITEMS[style],
        size=size,
        since=Since(more.pop("since", "since"), _since, "updated", "an ISO 8601 date-time"),
        order_by=("updated", "id"),
        **more,
    )


def _one(call):
    person = next((p for p in call.state.records if p["id"] == call.path_params["id"]), None)
    if person is None:
        raise ApiError(404, f"no person {call.path_params['id']}")
    return person


ROUTES = (
    _people(  # Gong: POST body cursor, answered at records.cursor
        "gong",
        Cursor("cursor", {"records.cursor": "cursor", "records.totalRecords": "total"}),
        PageSize("limit", 10, 100),
        method="POST",
        since="filter.fromDateTime",
    ),
    _people(  # Fathom: query cursor, next_cursor null on the last page, has_more
        "fathom",
        Cursor("cursor", {"next_cursor": ("cursor", None), "has_more": "has_more"}),
        PageSize("limit", 10, 100),
        since="created_after",
    ),
    _people(  # HubSpot: `after`, and an absolute link at paging.next.link
        "hubspot",
        NextLink("after", {"paging.next.after": "cursor", "paging.next.link": "next"}),
        PageSize("limit", 10, 100),
    ),
    _people(  # Tempo: offset/limit, metadata.next absolute link
        "tempo",
        OffsetLimit("offset", report={"metadata.next": "next", "metadata.total": "total"}),
        PageSize("limit", 50, 5000),
    ),
    _people(  # CallRail: page/per_page with total_pages
        "callrail",
        OffsetLimit("page", pages=True, report={"page": "page", "total_pages": "total_pages"}),
        PageSize("per_page", 100, 250),
    ),
    _people(  # Gmail: pageToken/nextPageToken, no `messages` key when empty
        "gmail",
        PageToken(omit_empty=True, report={"nextPageToken": "cursor", "total": "total"}),
        PageSize("maxResults", 100, 500),
    ),
    Plain("/people/{id}", "people.get", _one),
)
FAULTS = {"429": "slow down", "401": DENIED, "500": "oops", "503": "down"}


def error_body(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message}}


TABLE = RouteTable(
    ROUTES, error_body, FAULTS, auth=Auth("bearer", lambda state: state.tokens, DENIED)
)


@pytest.fixture
def state(company):
    return People(company)


@pytest.fixture
def knobs():
    return Knobs()


@pytest.fixture
def client(state, knobs):
    app = KnobsMiddleware(TABLE.app(state), knobs, TABLE.route_of, TABLE.fault_body)
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


def first_page(client, style: str, size: int, since: str | None = None, **args):
    """The first request of a listing, as each vendor's client sends it."""
    if style == "gong":
        body = {"limit": size, **args, **({"filter": {"fromDateTime": since}} if since else {})}
        return client.post("/gong", json=body)
    size_param = {"callrail": "per_page", "gmail": "maxResults"}.get(style, "limit")
    since_param = "created_after" if style == "fathom" else "since"
    params = {size_param: size, **args, **({since_param: since} if since else {})}
    return client.get(f"/{style}", params=params)


def follow(client, style: str, page: dict, first):
    """The request after `page` (`first` began the listing), or None on the last page."""
    if style in ("hubspot", "tempo"):  # absolute links
        links = page.get("paging", {}).get("next", {}) if style == "hubspot" else page["metadata"]
        link = links.get("link" if style == "hubspot" else "next")
        return client.get(link) if link else None
    if style == "gong":
        cursor = page["records"].get("cursor")
        body = {**json.loads(first.content), "cursor": cursor}
        return client.post("/gong", json=body) if cursor else None
    params = dict(first.url.params)
    if style == "fathom":
        assert page["has_more"] == (page["next_cursor"] is not None)
        params["cursor"] = page["next_cursor"]
    elif style == "callrail":
        params["page"] = page["page"] + 1 if page["page"] < page["total_pages"] else None
    else:
        params["pageToken"] = page.get("nextPageToken")
    position = params[CURSOR_PARAM.get(style, "page")]
    return client.get(f"/{style}", params=params) if position else None


def walk(client, style: str, size: int, since: str | None = None) -> tuple[list[str], int]:
    """Every id served across the pages of a listing, and how many pages it took."""
    response = first_page(client, style, size, since)
    first, ids, pages = response.request, [], 0
    while response is not None:
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        ids += [item["id"] for item in page.get(ITEMS[style], [])]
        response = follow(client, style, page, first)
    return ids, pages


def next_cursor(style: str, page: dict) -> str:
    if style == "gong":
        return page["records"]["cursor"]
    if style == "hubspot":
        return page["paging"]["next"]["after"]
    return page["next_cursor" if style == "fathom" else "nextPageToken"]


def truth(state, since: float | None = None) -> list[str]:
    kept = [p for p in state.records if since is None or p["updated"] >= since]
    return [p["id"] for p in sorted(kept, key=lambda p: (p["updated"], p["id"]))]


def stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


@pytest.mark.parametrize("size", [1, 7, 50])
@pytest.mark.parametrize("style", STYLES)
def test_every_record_exactly_once_in_a_stable_order(client, state, style, size):
    ids, pages = walk(client, style, size)
    assert 7 * 3 < len(state.records) < 50  # several pages of 7, one of 50
    assert ids == truth(state)
    assert pages == max(1, math.ceil(len(ids) / size))


@pytest.mark.parametrize("style", STYLES)
def test_updated_since_keeps_records_at_or_after_it(client, state, style):
    middle = sorted(p["updated"] for p in state.records)[len(state.records) // 2]
    ids, _ = walk(client, style, 7, since=stamp(middle))
    assert ids == truth(state, since=middle) and 0 < len(ids) < len(state.records)
    bad = first_page(client, style, 7, since="last tuesday")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].endswith("must be an ISO 8601 date-time")


@pytest.mark.parametrize("style", STYLES)
def test_an_empty_listing(client, state, style):
    future = stamp(max(p["updated"] for p in state.records) + 1)
    assert walk(client, style, 7, since=future) == ([], 1)
    page = first_page(client, style, 7, since=future).json()
    if style == "gmail":  # Gmail leaves `messages` out, and has no next page token
        assert page == {"total": 0}
    else:
        assert page[ITEMS[style]] == []


def test_reported_facts_land_at_their_dotted_paths(client, state):
    gong = first_page(client, "gong", 7).json()
    assert gong["records"]["totalRecords"] == len(state.records) and gong["records"]["cursor"]
    fathom = first_page(client, "fathom", 100).json()
    assert fathom["next_cursor"] is None and fathom["has_more"] is False  # null, not absent
    hubspot = first_page(client, "hubspot", 100).json()
    assert "paging" not in hubspot  # HubSpot drops `paging` on the last page
    link = first_page(client, "hubspot", 7).json()["paging"]["next"]["link"]
    assert link.startswith("http://testserver/hubspot?") and "limit=7" in link


@pytest.mark.parametrize("style", CURSOR_STYLES)
def test_tampered_or_made_up_cursors_are_400s(client, style):
    token, param = next_cursor(style, first_page(client, style, 3).json()), CURSOR_PARAM[style]
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, "not-a-cursor", "MTA6YWJjOmRlZg"):  # the last: base64 of "10:abc:def"
        response = first_page(client, style, 3, **{param: bad})
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": 400,
            "message": f"'{param}' is not a cursor this API issued",
        }


@pytest.mark.parametrize("style", CURSOR_STYLES)
def test_a_cursor_reused_with_other_filters_is_a_400(client, state, style):
    since = stamp(min(p["updated"] for p in state.records))
    token = next_cursor(style, first_page(client, style, 3, since=since).json())
    reuse = {CURSOR_PARAM[style]: token}
    assert first_page(client, style, 5, since=since, **reuse).status_code == 200  # other size
    other = first_page(client, style, 3, **reuse)  # no since filter
    assert other.status_code == 400
    assert other.json()["error"]["message"].endswith("belongs to a listing with other filters")


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}])
def test_bad_page_sizes_are_400s(client, params):
    response = client.get("/fathom", params=params)
    assert response.status_code == 400 and response.json()["error"]["message"].startswith(
        "'limit' must be"
    )
    assert client.get("/callrail", params={"page": 0}).status_code == 400


def test_a_page_past_the_end_is_empty(client, state):
    page = client.get("/callrail", params={"page": 99, "per_page": 7}).json()
    assert page["calls"] == [] and page["total_pages"] == math.ceil(len(state.records) / 7)


def test_plain_routes_share_auth_errors_and_route_names(client, state):
    person = state.records[0]
    assert client.get(f"/people/{person['id']}").json() == person
    missing = client.get("/people/U0NOBODY")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "no person U0NOBODY"
    route = lambda method, path: TABLE.route_of({"method": method, "path": path})  # noqa: E731
    assert route("GET", "/people/U01") == "people.get" and route("HEAD", "/tempo") == "tempo"
    assert route("POST", "/gong") == "gong" and route("GET", "/gong/") == "gong"
    assert route("GET", "/elsewhere") == "/elsewhere"


def test_bearer_basic_and_header_key_auth_answer_the_declared_401(state):
    def client_for(auth, **headers):
        app = RouteTable(ROUTES, error_body, FAULTS, auth=auth).app(state)
        return TestClient(app, headers=headers)

    denied = {"error": {"code": 401, "message": DENIED}}
    bearer = Auth("bearer", lambda s: s.tokens, DENIED)
    basic = Auth("basic", lambda s: {("ann", "secret")}, DENIED)
    key = Auth("header", lambda s: s.tokens, DENIED, header="X-Api-Key")
    for auth, good, bad in (
        (bearer, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer nope"}),
        (basic, {"Authorization": "Basic YW5uOnNlY3JldA=="}, {"Authorization": "Basic YW5u"}),
        (key, {"X-Api-Key": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}),
    ):
        assert client_for(auth, **good).get("/tempo").status_code == 200
        for headers in (bad, {}):
            response = client_for(auth, **headers).get("/tempo")
            assert (response.status_code, response.json()) == (401, denied)
    state.tokens = {"rotated"}  # credentials are read from the state on every request
    assert client_for(bearer, Authorization=f"Bearer {TOKEN}").get("/tempo").status_code == 401


def test_per_route_rate_limit_is_a_429_with_retry_after(client, knobs):
    knobs.rate_limits["tempo"] = 2
    assert [client.get("/tempo").status_code for _ in range(2)] == [200, 200]
    limited = client.get("/tempo")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json() == {"error": {"code": 429, "message": "slow down"}}
    assert client.get("/fathom").status_code == 200  # another route, another budget
    assert knobs.count_429 == {"tempo": 1}


def test_injected_500_in_the_vendor_shape(client, knobs):
    knobs.inject("gong", "500")
    failed = client.post("/gong", json={})
    assert (failed.status_code, failed.json()) == (500, {"error": {"code": 500, "message": "oops"}})
    assert client.post("/gong", json={}).status_code == 200


def test_a_post_body_must_be_a_json_object(client):
    for content in (b"{not json", b"[1, 2]"):
        response = client.post("/gong", content=content)
        assert response.status_code == 400 and "request body" in response.json()["error"]["message"]


def test_unknown_page_facts_are_refused_when_declared():
    with pytest.raises(ValueError, match=r"/gong: unknown page facts \['next_page'\]"):
        _people("gong", Cursor("cursor", {"next": "next_page"}), PageSize("limit", 1, 1))
