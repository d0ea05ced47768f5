"""The Fireflies emulator: its data, its GraphQL handling, its errors and its knob routes."""

from __future__ import annotations

import datetime as dt
import re
import time

import httpx
import pytest

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
from sync_pipelines_sandbox.fireflies.data import SHARED_COMPANY_WIDE, FirefliesData
from sync_pipelines_sandbox.server import Sandbox

LIST = """
query Transcripts($fromDate: DateTime, $toDate: DateTime, $limit: Int, $skip: Int) {
  transcripts(fromDate: $fromDate, toDate: $toDate, limit: $limit, skip: $skip) { id date }
}
"""


@pytest.fixture(scope="module")
def ff_sandbox():
    with Sandbox(company=Company.generate(seed=5, messages=700, days=5)) as sb:
        yield sb


@pytest.fixture
def sb(ff_sandbox):
    ff_sandbox.knobs.reset()
    return ff_sandbox


def post(sb, query, variables=None, key=SANDBOX_FIREFLIES_API_KEY, operation="Transcripts"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if operation:
        headers["X-Apollo-Operation-Name"] = operation
    body = {"query": query, "variables": variables or {}}
    return httpx.post(sb.urls["fireflies"] + "/graphql", json=body, headers=headers, timeout=10)


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ data
def test_meetings_are_coherent_with_the_company(sb):
    company = sb.company
    data = FirefliesData.of(company)
    meetings = data.meetings()
    assert len(meetings) == max(12, company.message_count // 25)
    people = {p.email: p for p in company.people if not p.is_bot}
    project_keys = {p.key for p in company.projects}
    first_day = dt.datetime.combine(
        company.anchor - dt.timedelta(days=company.days - 1), dt.time(), dt.UTC
    ).timestamp()
    now = time.time()
    for m in meetings:
        assert m.organizer.email in people
        guests = [a for a in m.attendees if a.email not in people]
        assert all(a.email.endswith(".example") for a in guests)
        assert guests == [] or "customer call" in m.title
        assert 15 <= m.duration_min <= 90
        assert first_day <= m.date and m.date + m.duration_min * 60 <= now - 60
        assert set(m.issue_keys) <= set(company.issue_keys)
        transcript = data.transcript(m)
        text = " ".join(s["text"] for s in transcript["sentences"])
        mentioned = {k for k in re.findall(r"\b[A-Z][A-Z0-9]+-\d+\b", text)}
        assert {k for k in mentioned if k.split("-")[0] in project_keys} <= set(m.issue_keys)
        names = {a.name for a in m.attendees}
        assert {s["speaker_name"] for s in transcript["sentences"]} <= names
        assert transcript["sentences"][-1]["end_time"] <= m.duration_min * 60 + 60
    privacies = {m.privacy for m in meetings}
    assert privacies & SHARED_COMPANY_WIDE and privacies - SHARED_COMPANY_WIDE


def test_generation_is_deterministic_and_scales():
    anchor = dt.date(2026, 1, 15)
    one = FirefliesData(Company.generate(seed=9, messages=600, days=6, anchor=anchor))
    two = FirefliesData(Company.generate(seed=9, messages=600, days=6, anchor=anchor))
    assert [(m.id, m.title, m.date_ms) for m in one.meetings()] == [
        (m.id, m.title, m.date_ms) for m in two.meetings()
    ]
    first, second = one.meetings()[0], two.meetings()[0]
    assert one.transcript(first) == two.transcript(second)
    bigger = FirefliesData(Company.generate(seed=9, messages=3000, days=6, anchor=anchor))
    assert len(bigger.meetings()) == 120 > len(one.meetings())


# ------------------------------------------------------------------ GraphQL
def test_listing_serves_exactly_the_selected_fields(sb):
    query = """
    query Transcripts { transcripts(limit: 3) {
      id started: date ...People summary { keywords } sentences { speaker_name text } __typename
    } }
    fragment People on Transcript { meeting_attendees { email } }
    """
    response = post(sb, query)
    assert response.status_code == 200
    items = response.json()["data"]["transcripts"]
    assert len(items) == 3
    for item in items:
        assert set(item) == {"id", "started", "meeting_attendees", "summary", "sentences",
                             "__typename"}
        assert item["__typename"] == "Transcript"
        assert set(item["summary"]) == {"keywords"}
        assert set(item["sentences"][0]) == {"speaker_name", "text"}
        stored = FirefliesData.of(sb.company).meeting(item["id"])
        assert item["started"] == stored.date_ms
        assert [a["email"] for a in item["meeting_attendees"]] == [
            a.email for a in stored.attendees
        ]


def test_listing_is_newest_first_with_inclusive_bounds_and_skip(sb):
    data = FirefliesData.of(sb.company)
    meetings = data.meetings()
    lo, hi = meetings[-5].date, meetings[4].date  # both bounds land exactly on a meeting
    expected = [m.id for m in data.between(int(lo * 1000), int(hi * 1000))]
    got, skip = [], 0
    while True:
        page = post(sb, LIST, {"fromDate": iso(lo), "toDate": iso(hi), "limit": 7, "skip": skip})
        items = page.json()["data"]["transcripts"]
        got += [t["id"] for t in items]
        if len(items) < 7:
            break
        skip += 7
    assert got == expected and {meetings[-5].id, meetings[4].id} <= set(got)
    assert not {m.id for m in meetings[:4] + meetings[-4:]} & set(got) - {
        m.id for m in meetings if m.date in (lo, hi)
    }
    dates = [data.meeting(i).date_ms for i in got]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize(
    "variables, field",
    [({"limit": 51}, "limit"), ({"limit": 0}, "limit"), ({"skip": -1}, "skip"),
     ({"fromDate": "yesterday"}, "fromDate")],
)
def test_bad_arguments_are_graphql_errors(sb, variables, field):
    response = post(sb, LIST, variables)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"transcripts": None}
    (error,) = body["errors"]
    assert error["code"] == error["extensions"]["code"] == "invalid_arguments"
    assert error["extensions"]["status"] == 400 and error["path"] == ["transcripts"]
    assert error["extensions"]["metadata"]["fields"][0]["name"] == field


def test_invalid_documents_are_rejected_like_a_graphql_server(sb):
    unknown = post(sb, "{ transcripts { id nope } }")
    assert unknown.status_code == 400
    assert "Cannot query field 'nope'" in unknown.json()["errors"][0]["message"]
    assert post(sb, "{ transcripts { id ").status_code == 400
    mutation = post(sb, 'mutation { deleteTranscript(id: "x") { id } }')
    assert mutation.status_code == 400
    wrong_type = post(sb, LIST, {"limit": "ten"})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_transcript_by_id(sb):
    meeting = FirefliesData.of(sb.company).meetings()[3]
    query = "query Transcript($id: String!) { transcript(id: $id) { id title privacy } }"
    found = post(sb, query, {"id": meeting.id}, operation="Transcript").json()
    assert found == {
        "data": {"transcript": {"id": meeting.id, "title": meeting.title,
                                "privacy": meeting.privacy}}
    }
    missing = post(sb, query, {"id": "nope"}, operation="Transcript").json()
    assert missing["data"] == {"transcript": None}
    assert missing["errors"][0]["code"] == "object_not_found"


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_bad_api_key_is_an_auth_failed_error(sb, key):
    response = post(sb, LIST, key=key)
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["code"] == "auth_failed" and error["extensions"]["status"] == 401
    assert response.json()["data"] is None


def test_injected_graphql_rate_limit_carries_when_to_retry(sb):
    sb.fireflies.inject_error("too_many_requests", count=1, retry_after_s=2)
    limited = post(sb, LIST).json()
    (error,) = limited["errors"]
    assert error["extensions"]["code"] == "too_many_requests"
    assert error["extensions"]["status"] == 429
    resume = error["extensions"]["metadata"]["retryAfter"] / 1000
    assert time.time() + 1 < resume <= time.time() + 2.5
    assert "errors" not in post(sb, LIST).json()  # only the next call was limited


def test_knob_routes_name_the_operation_and_http_faults_speak_fireflies(sb):
    post(sb, LIST)
    post(sb, '{ transcript(id: "x") { id } }', operation="Transcript")
    post(sb, LIST, operation=None)
    assert sb.knobs.calls == {"transcripts": 1, "transcript": 1, "graphql": 1}
    sb.knobs.inject("transcripts", "429", retry_after=3)
    limited = post(sb, LIST)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.json()["errors"][0]["code"] == "too_many_requests"
    sb.knobs.inject("transcripts", "401")
    assert post(sb, LIST).status_code == 401
    assert sb.env()["FIREFLIES_API_KEY"] == SANDBOX_FIREFLIES_API_KEY
    assert sb.env()["FIREFLIES_BASE_URL"] == sb.urls["fireflies"]


def test_edits_show_in_the_next_answer(sb):
    data = FirefliesData.of(sb.company)
    people = [p for p in sb.company.people if not p.is_bot][:3]
    added = data.add_meeting(
        "Billing sync", people, script=[(0, "Hello"), (1, "Hi, SUBS-1 is done")]
    )
    query = (
        "query T($id: String!) { transcript(id: $id) { title sentences { speaker_name text } } }"
    )
    got = post(sb, query, {"id": added.id}, operation="Transcript").json()["data"]["transcript"]
    assert got["sentences"] == [
        {"speaker_name": people[0].name, "text": "Hello"},
        {"speaker_name": people[1].name, "text": "Hi, SUBS-1 is done"},
    ]
    assert added.date <= time.time() - 60 - added.duration_min * 60 + 1
    data.rename(added.id, "Billing sync (renamed)")
    got = post(sb, query, {"id": added.id}, operation="Transcript").json()["data"]["transcript"]
    assert got["title"] == "Billing sync (renamed)"
    data.delete(added.id)
    assert added.id not in {m.id for m in data.meetings()}


def test_a_processing_meeting_is_served_without_transcript_until_ready(sb):
    data = FirefliesData.of(sb.company)
    people = [p for p in sb.company.people if not p.is_bot][:2]
    added = data.add_meeting("Still processing", people, ready_at=time.time() + 3600)
    query = (
        "query T($id: String!) { transcript(id: $id) { title sentences { text } "
        "summary { overview } meeting_info { summary_status } } }"
    )
    try:
        got = post(sb, query, {"id": added.id}, operation="Transcript").json()["data"]
        assert got["transcript"]["meeting_info"] == {"summary_status": "processing"}
        assert got["transcript"]["sentences"] == [] and got["transcript"]["summary"] is None
        assert added.id not in {m.id for m in data.expected(added.date, time.time())}
        data.set_ready_at(added.id, time.time())
        got = post(sb, query, {"id": added.id}, operation="Transcript").json()["data"]
        assert got["transcript"]["meeting_info"] == {"summary_status": "processed"}
        assert got["transcript"]["sentences"] and got["transcript"]["summary"]["overview"]
    finally:
        data.delete(added.id)
