"""The Gong emulator: its data (coherent with the company, deterministic, planted insight lines),
its routes as Gong's reference describes them (Basic auth, body cursors bound to the filters,
contentSelector, the empty-filter 404, offset times), not-ready transcripts and deletions."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.gong.api import NO_CALLS, UNAUTHORIZED
from sync_pipelines_sandbox.gong.data import (
    SANDBOX_GONG_ACCESS_KEY as KEY,
)
from sync_pipelines_sandbox.gong.data import (
    SANDBOX_GONG_ACCESS_KEY_SECRET as SECRET,
)
from sync_pipelines_sandbox.gong.data import (
    GongData,
)
from sync_pipelines_sandbox.insight_terms import facts_in
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.text import CUSTOMERS

from sync_pipelines import clock

AUTH = (KEY, SECRET)
PARTIES_AND_CONTEXT = {"context": "Extended", "exposedFields": {"parties": True}}


@pytest.fixture(scope="module")
def gong_sandbox():
    with Sandbox(company=Company.generate(seed=5, messages=700, days=5)) as sb:
        yield sb


@pytest.fixture
def sb(gong_sandbox):
    gong_sandbox.knobs.reset()
    gong_sandbox.gong.page_size = 100
    gong_sandbox.gong.not_ready_style = "empty"
    return gong_sandbox


def post(sb, path, body, auth=AUTH):
    return httpx.post(sb.urls["gong"] + path, json=body, auth=auth, timeout=10)


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spoken_text(data: GongData, call) -> str:
    names = {data.speaker_id(call, i): p.name for i, p in enumerate(call.parties)}
    return "\n".join(
        f"{names[m['speakerId']]}: " + " ".join(s["text"] for s in m["sentences"])
        for m in data.transcript(call)
    )


# ------------------------------------------------------------------ data
def test_calls_are_coherent_with_the_company(sb):
    company = sb.company
    data = GongData.of(company)
    calls = data.calls()
    assert len(calls) == max(24, company.message_count // 5)
    emails = {p.email for p in company.people if not p.is_bot}
    start, end = company.span()
    domains = {c.lower().replace(" ", "") + ".example" for c in CUSTOMERS}
    for call in calls:
        assert call.host.internal and call.host.email in emails
        assert all(p.email in emails for p in call.parties if p.internal)
        guests = [p for p in call.parties if not p.internal]
        assert (guests != []) == (call.kind != "pipeline review")
        assert all(p.email.split("@")[1] in domains for p in guests)
        assert (call.crm is not None) == (call.kind != "pipeline review")
        assert start <= call.started and call.started + call.duration_s <= end
        assert 15 * 60 <= call.duration_s <= 60 * 60
        local = dt.datetime.fromisoformat(call.started_iso())
        assert local.timestamp() == call.started and 8 <= local.hour < 18
        said = facts_in(spoken_text(data, call))
        assert {(f.kind, f.value) for f in said} == {(f.kind, f.value) for f in data.planted(call)}
        assert bool(data.planted(call)) == (call.kind == "customer call")
    assert {c.offset_min for c in calls} >= {-480, 330}


def test_generation_is_deterministic():
    anchor = dt.date(2026, 1, 15)
    one = GongData(Company.generate(seed=3, messages=300, days=3, anchor=anchor))
    two = GongData(Company.generate(seed=3, messages=300, days=3, anchor=anchor))
    assert [(c.id, c.started, c.title) for c in one.calls()] == [
        (c.id, c.started, c.title) for c in two.calls()
    ]
    first, second = one.calls()[0], two.calls()[0]
    assert one.transcript(first) == two.transcript(second)


# ------------------------------------------------------------------ auth and errors
@pytest.mark.parametrize("auth", [None, ("wrong", SECRET), (KEY, "wrong")])
def test_basic_auth_is_required(sb, auth):
    response = post(sb, "/v2/calls/extensive", {"filter": {}}, auth=auth)
    assert response.status_code == 401
    assert response.json()["errors"] == [UNAUTHORIZED] and response.json()["requestId"]


def test_a_filter_matching_nothing_answers_404_as_gong_does(sb):
    body = {
        "filter": {"fromDateTime": "2020-01-01T00:00:00Z", "toDateTime": "2020-01-02T00:00:00Z"}
    }
    for path in ("/v2/calls/extensive", "/v2/calls/transcript"):
        response = post(sb, path, body)
        assert response.status_code == 404 and response.json()["errors"] == [NO_CALLS]
    response = httpx.get(sb.urls["gong"] + "/v2/calls", params=body["filter"], auth=AUTH)
    assert response.status_code == 404 and response.json()["errors"] == [NO_CALLS]


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "filter is required"),
        ({"filter": {"fromDateTime": "2026-11-01T00:00:00"}}, "fromDateTime must be an ISO-8601"),
        ({"filter": {"callIds": "1"}}, "callIds must be a list"),
        ({"filter": {}, "contentSelector": {"context": "All"}}, "contentSelector.context"),
        ({"filter": {}, "cursor": "made-up"}, "not a cursor this API issued"),
    ],
)
def test_bad_requests_answer_400(sb, body, message):
    response = post(sb, "/v2/calls/extensive", body)
    assert response.status_code == 400 and message in response.json()["errors"][0]


# ------------------------------------------------------------------ listings
def walk(sb, path, body) -> tuple[list[dict], list[dict]]:
    """Every item and `records` of a POST listing, following records.cursor."""
    items, facts = [], []
    while True:
        page = post(sb, path, body)
        assert page.status_code == 200, page.text
        answer = page.json()
        facts.append(answer["records"])
        items += answer["calls" if path.endswith("extensive") else "callTranscripts"]
        if "cursor" not in answer["records"]:
            return items, facts
        body = {**body, "cursor": answer["records"]["cursor"]}


def test_extensive_pages_by_body_cursor_in_start_order(sb):
    sb.gong.page_size = 7
    data = GongData.of(sb.company)
    start, end = sb.company.span()
    middle = start + (end - start) // 2
    body = {"filter": {"fromDateTime": iso(start), "toDateTime": iso(middle)}}
    calls, facts = walk(sb, "/v2/calls/extensive", body)
    assert [c["metaData"]["id"] for c in calls] == [c.id for c in data.between(start, middle)]
    assert [f["currentPageNumber"] for f in facts] == list(range(len(facts)))
    assert {f["totalRecords"] for f in facts} == {len(calls)} and len(facts) > 2
    assert sb.knobs.calls["extensive"] == len(facts)
    # A cursor belongs to its filters.
    first = post(sb, "/v2/calls/extensive", body).json()["records"]["cursor"]
    other = {"filter": {"fromDateTime": iso(start)}, "cursor": first}
    assert post(sb, "/v2/calls/extensive", other).status_code == 400


def test_the_filter_is_inclusive_from_exclusive_to_and_times_carry_offsets(sb):
    data = GongData.of(sb.company)
    call = data.calls()[5]
    at = {"fromDateTime": call.started_iso(), "toDateTime": iso(call.started + 1)}
    (found,) = [c for c in walk(sb, "/v2/calls/extensive", {"filter": at})[0]
                if c["metaData"]["id"] == call.id]  # fmt: skip
    assert found["metaData"]["started"] == call.started_iso()
    before = {"fromDateTime": iso(call.started - 60), "toDateTime": call.started_iso()}
    ids = [c.id for c in data.between(call.started - 60, call.started)]
    response = post(sb, "/v2/calls/extensive", {"filter": before})
    listed = [c["metaData"]["id"] for c in response.json().get("calls", [])]
    assert call.id not in listed and listed == ids


def test_the_content_selector_is_honoured(sb):
    data = GongData.of(sb.company)
    call = next(c for c in data.calls() if c.crm is not None)
    base = {"filter": {"callIds": [call.id]}}
    (bare,) = post(sb, "/v2/calls/extensive", base).json()["calls"]
    assert set(bare) == {"metaData"}
    basic = {**base, "contentSelector": {"context": "Basic"}}
    (linked,) = post(sb, "/v2/calls/extensive", basic).json()["calls"]
    assert all("fields" not in o for o in linked["context"][0]["objects"])
    full = {**base, "contentSelector": PARTIES_AND_CONTEXT}
    (rich,) = post(sb, "/v2/calls/extensive", full).json()["calls"]
    (crm,) = rich["context"]
    assert crm["system"] == call.crm.system
    names = [
        f["value"]
        for o in crm["objects"]
        for f in o["fields"]
        if f["name"] in ("Name", "name", "dealname")
    ]
    assert names == [call.crm.account, call.crm.opportunity]
    parties = rich["parties"]
    assert [p["emailAddress"] for p in parties] == [p.email for p in call.parties]
    assert {p["affiliation"] for p in parties} == {"Internal", "External"}
    assert parties[0]["userId"] == rich["metaData"]["primaryUserId"]


def test_transcripts_by_call_ids_with_speakers_of_the_parties(sb):
    data = GongData.of(sb.company)
    calls = data.calls()[:3]
    body = {"filter": {"callIds": [c.id for c in calls]}}
    entries, _ = walk(sb, "/v2/calls/transcript", body)
    assert [e["callId"] for e in entries] == [c.id for c in calls]
    for entry, call in zip(entries, calls):
        speakers = {data.speaker_id(call, i) for i in range(len(call.parties))}
        assert {m["speakerId"] for m in entry["transcript"]} <= speakers
        starts = [s["start"] for m in entry["transcript"] for s in m["sentences"]]
        assert starts == sorted(starts) and all(isinstance(s, int) for s in starts)


@pytest.mark.parametrize("style", ["empty", "absent"])
def test_a_call_not_transcribed_yet_is_listed_without_a_transcript(sb, style):
    sb.gong.not_ready_style = style
    data = GongData.of(sb.company)
    people = [p for p in sb.company.people if not p.is_bot][:2]
    call = data.add_call(people, ready_at=clock.now_epoch() + 3600)
    body = {"filter": {"callIds": [call.id]}, "contentSelector": PARTIES_AND_CONTEXT}
    assert post(sb, "/v2/calls/extensive", body).json()["calls"][0]["metaData"]["id"] == call.id
    answer = post(sb, "/v2/calls/transcript", {"filter": {"callIds": [call.id]}})
    assert answer.status_code == 200
    got = answer.json()["callTranscripts"]
    assert got == ([{"callId": call.id, "transcript": []}] if style == "empty" else [])
    data.set_ready_at(call.id, None)
    (entry,) = post(sb, "/v2/calls/transcript", {"filter": {"callIds": [call.id]}}).json()[
        "callTranscripts"
    ]
    assert entry["transcript"]


def test_get_calls_lists_metadata_only_by_query_cursor(sb):
    sb.gong.page_size = 10
    data = GongData.of(sb.company)
    start, end = sb.company.span()
    params, ids = {"fromDateTime": iso(start), "toDateTime": iso(end)}, []
    while True:
        answer = httpx.get(sb.urls["gong"] + "/v2/calls", params=params, auth=AUTH).json()
        ids += [c["id"] for c in answer["calls"]]
        assert all("parties" not in c and "started" in c for c in answer["calls"])
        if "cursor" not in answer["records"]:
            break
        params = {**params, "cursor": answer["records"]["cursor"]}
    assert ids == [c.id for c in data.between(start, end)]
    assert sb.knobs.calls["calls"] == -(-len(ids) // 10)


def test_a_deleted_call_is_gone_everywhere(sb):
    data = GongData.of(sb.company)
    people = [p for p in sb.company.people if not p.is_bot][:2]
    call = data.add_call(people)
    sb.gong.delete_call(call.id)
    by_id = {"filter": {"callIds": [call.id]}}
    assert post(sb, "/v2/calls/extensive", by_id).status_code == 404
    assert post(sb, "/v2/calls/transcript", by_id).status_code == 404
    assert data.call(call.id) is None


def test_knob_routes_and_faults_in_gongs_shape(sb):
    sb.knobs.inject("transcript", "429", retry_after=2)
    response = post(sb, "/v2/calls/transcript", {"filter": {}})
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert response.json()["errors"] and response.json()["requestId"]
    post(sb, "/v2/calls/extensive", {"filter": {}})
    httpx.get(sb.urls["gong"] + "/v2/calls", auth=AUTH)
    assert {r for r, n in sb.knobs.calls.items() if n} == {"transcript", "extensive", "calls"}
