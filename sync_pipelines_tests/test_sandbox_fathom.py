"""The Fathom emulator: its data, its listing (paging, strict bounds, filters, include flags),
the recordings routes, its errors and its knob routes."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fathom.data import SANDBOX_FATHOM_API_KEY, FathomData, iso
from sync_pipelines_sandbox.insight_terms import facts_in
from sync_pipelines_sandbox.server import Sandbox

from sync_pipelines import clock

MEETINGS = "/external/v1/meetings"


@pytest.fixture(scope="module")
def fathom_sandbox():
    with Sandbox(company=Company.generate(seed=5, messages=700, days=5)) as sb:
        yield sb


@pytest.fixture
def sb(fathom_sandbox):
    fathom_sandbox.knobs.reset()
    return fathom_sandbox


@pytest.fixture
def data(sb) -> FathomData:
    return FathomData.of(sb.company)


def get(sb, path, params=None, key=SANDBOX_FATHOM_API_KEY):
    headers = {"X-Api-Key": key} if key else {}
    return httpx.get(sb.urls["fathom"] + path, params=params, headers=headers, timeout=10)


def listing(sb, params) -> list[dict]:
    """Every item of a listing, following next_cursor."""
    items, cursor = [], None
    while True:
        answer = get(sb, MEETINGS, [*params, *([("cursor", cursor)] if cursor else [])])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"limit", "next_cursor", "items"} and body["limit"] == 10
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def people(company, n):
    return [p for p in company.people if not p.is_bot][:n]


# ------------------------------------------------------------------ data
def test_meetings_are_coherent_with_the_company(sb, data):
    company = sb.company
    recordings = data.recordings()
    assert len(recordings) == max(16, company.message_count // 25)
    staff = {p.email for p in company.people if not p.is_bot}
    start, end = company.span()
    crossing = 0
    for r in recordings:
        assert r.recorder.email in staff and not r.recorder.is_external
        guests = [v for v in r.invitees if v.is_external]
        assert all(v.email not in staff and v.email.endswith(".example") for v in guests)
        assert bool(guests) == (r.customer is not None)
        assert start <= r.start < r.end < r.created <= end
        crossing += iso(r.start)[:10] != iso(r.created)[:10]
        content = data.content(r)
        text = " ".join(t["text"] for t in content["transcript"])
        planted = data.planted(r)
        # The chatter says nothing an insight extractor would take: only the planted lines.
        assert {(f.kind, f.value) for f in facts_in(text)} == {(f.kind, f.value) for f in planted}
        assert bool(planted) == bool(guests)
        assigned = [a["assignee"]["name"] for a in content["action_items"]]
        assert assigned == [f.owner for f in planted if f.kind == "action_item"]
        assert {t["speaker"]["display_name"] for t in content["transcript"]} <= {
            v.name for v in r.invitees
        }
    assert crossing >= 1, "some meetings start before midnight and are saved after it"


def test_generation_is_deterministic():
    anchor = dt.date(2026, 1, 15)
    one = FathomData(Company.generate(seed=9, messages=600, days=6, anchor=anchor))
    two = FathomData(Company.generate(seed=9, messages=600, days=6, anchor=anchor))
    assert [(r.recording_id, r.title, r.created) for r in one.recordings()] == [
        (r.recording_id, r.title, r.created) for r in two.recordings()
    ]
    assert one.content(one.recordings()[0]) == two.content(two.recordings()[0])


# ------------------------------------------------------------------ the listing
def test_listing_pages_newest_first_with_strict_bounds(sb, data):
    recordings = data.recordings()
    low, high = recordings[-3].created, recordings[2].created  # bounds land on meetings
    items = listing(sb, [("created_after", iso(low)), ("created_before", iso(high))])
    expected = [r.recording_id for r in recordings if low < r.created < high]
    assert [m["recording_id"] for m in items] == expected and len(expected) > 10
    assert sb.knobs.calls["meetings"] == -(-len(expected) // 10)
    everything = listing(sb, [])
    assert [m["recording_id"] for m in everything] == [r.recording_id for r in recordings]


def test_content_comes_only_when_asked_and_is_null_while_processing(sb, data):
    busy = data.add_meeting(
        "Still processing", people(sb.company, 2), ready_at=clock.now_epoch() + 3600
    )
    try:
        (bare,) = get(sb, MEETINGS, {"created_after": iso(busy.created - 1)}).json()["items"]
        assert not {"transcript", "default_summary", "action_items", "crm_matches"} & set(bare)
        assert bare["recorded_by"]["email"] == busy.recorder.email
        assert bare["created_at"] == iso(busy.created)
        flags = {
            "include_transcript": "true",
            "include_summary": "true",
            "include_action_items": "true",
            "include_crm_matches": "true",
        }
        (full,) = get(sb, MEETINGS, {"created_after": iso(busy.created - 1), **flags}).json()[
            "items"
        ]
        assert full["transcript"] is None and full["default_summary"] is None
        assert full["action_items"] is None and full["crm_matches"]["contacts"] == []
        data.set_ready_at(busy.recording_id, None)
        (done,) = get(sb, MEETINGS, {"created_after": iso(busy.created - 1), **flags}).json()[
            "items"
        ]
        assert done["transcript"] and done["default_summary"]["markdown_formatted"]
        assert done["transcript"][0]["timestamp"] == "00:00:00"
    finally:
        data.delete(busy.recording_id)


def test_filters(sb, data):
    recordings = data.recordings()
    some = recordings[0]
    by = listing(sb, [("recorded_by[]", some.recorder.email), ("recorded_by[]", "x@y.test")])
    assert {m["recorded_by"]["email"] for m in by} == {some.recorder.email}
    assert len(by) == sum(r.recorder.email == some.recorder.email for r in recordings)
    teams = listing(sb, [("teams[]", "Sales"), ("teams[]", "Product")])
    assert {m["recorded_by"]["team"] for m in teams} <= {"Sales", "Product"}
    assert len(teams) == sum(r.team in ("Sales", "Product") for r in recordings)
    external = listing(sb, [("calendar_invitees_domains_type", "one_or_more_external")])
    internal = listing(sb, [("calendar_invitees_domains_type", "only_internal")])
    assert len(external) + len(internal) == len(recordings) and external and internal
    domain = next(v.domain for r in recordings for v in r.invitees if v.is_external)
    found = listing(sb, [("calendar_invitees_domains[]", domain)])
    assert found and all(
        any(i["email_domain"] == domain for i in m["calendar_invitees"]) for m in found
    )


@pytest.mark.parametrize(
    "params, message",
    [
        ({"created_after": "yesterday"}, "'created_after' must be an ISO 8601 timestamp"),
        ({"calendar_invitees_domains_type": "some"}, "'calendar_invitees_domains_type' must"),
        ({"cursor": "made-up"}, "'cursor' is not a cursor this API issued"),
    ],
)
def test_bad_arguments_answer_400(sb, params, message):
    answer = get(sb, MEETINGS, params)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_a_cursor_belongs_to_its_filters(sb, data):
    first = get(sb, MEETINGS).json()
    answer = get(sb, MEETINGS, {"cursor": first["next_cursor"], "teams[]": "Sales"})
    assert answer.status_code == 400
    assert "belongs to a listing with other filters" in answer.json()["error"]


@pytest.mark.parametrize("key", [None, "wrong"])
def test_every_route_demands_the_api_key(sb, data, key):
    rid = data.recordings()[0].recording_id
    for path in (MEETINGS, f"/external/v1/recordings/{rid}/transcript"):
        answer = get(sb, path, key=key)
        assert answer.status_code == 401 and answer.json() == {"error": "Invalid API key"}


# ------------------------------------------------------------------ recordings
def test_recordings_routes_answer_the_content(sb, data):
    recording = data.recordings()[1]
    rid = recording.recording_id
    content = data.content(recording)
    assert get(sb, f"/external/v1/recordings/{rid}/transcript").json() == {
        "transcript": content["transcript"]
    }
    assert get(sb, f"/external/v1/recordings/{rid}/summary").json() == {
        "summary": content["default_summary"]
    }
    hook = "https://example.test/hook"
    assert get(sb, f"/external/v1/recordings/{rid}/summary", {"destination_url": hook}).json() == {
        "destination_url": hook
    }
    missing = get(sb, "/external/v1/recordings/1/transcript")
    assert missing.status_code == 404 and "not found" in missing.json()["error"]
    assert sb.knobs.calls["transcript"] == 2 and sb.knobs.calls["summary"] == 2


def test_a_deleted_meeting_is_gone(sb, data):
    gone = data.add_meeting("Deleted soon", people(sb.company, 2))
    sb.fathom.delete_meeting(gone.recording_id)
    assert gone.recording_id not in {m["recording_id"] for m in listing(sb, [])}
    assert get(sb, f"/external/v1/recordings/{gone.recording_id}/summary").status_code == 404


def test_knob_faults_answer_in_fathoms_shape(sb):
    sb.knobs.inject("meetings", "429", retry_after=3)
    answer = get(sb, MEETINGS)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
    assert answer.json() == {"error": "Rate limit exceeded"}
    assert get(sb, MEETINGS).status_code == 200
