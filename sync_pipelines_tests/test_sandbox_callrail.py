"""The CallRail emulator answers as apidocs.callrail.com documents: token auth, offset and
relative pagination, inclusive ISO 8601 date filters with the 25-month retention, `fields=`,
error bodies, and calls marked as spam left out of every listing."""

from datetime import timedelta

import httpx
import pytest
from sync_pipelines_sandbox.callrail.data import (
    SANDBOX_ACCOUNT_ID,
    SANDBOX_CALLRAIL_KEY,
    CallRailData,
)

from sync_pipelines import clock

ACCOUNT = f"/v3/a/{SANDBOX_ACCOUNT_ID}"
AUTH = {"Authorization": f'Token token="{SANDBOX_CALLRAIL_KEY}"'}
ALL_TIME = {"start_date": "2026-01-01", "end_date": (clock.today() + timedelta(days=1)).isoformat()}


def get(sandbox, path, headers=AUTH, **params):
    return httpx.get(sandbox.urls["callrail"] + path, headers=headers, params=params)


def calls_in_world(sandbox):
    data = CallRailData.of(sandbox.company)
    return list(data.between("calls", 0, clock.now_epoch() + 1))


def test_token_auth_quoted_or_not_else_401(sandbox):
    for header in (AUTH, {"Authorization": f"Token token={SANDBOX_CALLRAIL_KEY}"}):
        assert get(sandbox, f"{ACCOUNT}/calls.json", headers=header).status_code == 200
    for header in ({}, {"Authorization": 'Token token="nope"'}, {"Authorization": "Bearer x"}):
        answer = get(sandbox, f"{ACCOUNT}/calls.json", headers=header)
        assert answer.status_code == 401 and answer.json() == {
            "error": "HTTP Token: Access denied."
        }
    assert get(sandbox, "/v3/a/ACCother/calls.json").status_code == 404


def test_offset_pagination_counts_pages_and_ends_short(sandbox):
    total = len(calls_in_world(sandbox))
    per_page = 7
    first = get(sandbox, f"{ACCOUNT}/calls.json", per_page=per_page, **ALL_TIME).json()
    assert first["page"] == 1 and first["per_page"] == per_page
    assert first["total_records"] == total and first["total_pages"] == -(-total // per_page)
    ids = []
    for page in range(1, first["total_pages"] + 1):
        body = get(sandbox, f"{ACCOUNT}/calls.json", per_page=per_page, page=page, **ALL_TIME)
        ids += [c["id"] for c in body.json()["calls"]]
    assert len(ids) == len(set(ids)) == total
    assert len(body.json()["calls"]) == total - per_page * (first["total_pages"] - 1)
    past = get(sandbox, f"{ACCOUNT}/calls.json", page=first["total_pages"] + 1, **ALL_TIME)
    assert past.json()["calls"] == []
    for bad in ({"per_page": 251}, {"per_page": 0}, {"page": 0}):
        assert get(sandbox, f"{ACCOUNT}/calls.json", **bad).status_code == 400


def test_relative_pagination_follows_next_page_to_the_end(sandbox):
    total = len(calls_in_world(sandbox))
    url = sandbox.urls["callrail"] + f"{ACCOUNT}/calls.json"
    params = {"relative_pagination": "true", "per_page": 9, "sort": "start_time", "order": "asc"}
    ids, times = [], []
    body = httpx.get(url, headers=AUTH, params={**params, **ALL_TIME}).json()
    while True:
        assert set(body) == {"per_page", "has_next_page", "next_page", "calls"}
        ids += [c["id"] for c in body["calls"]]
        times += [c["start_time"] for c in body["calls"]]
        if not body["has_next_page"]:
            assert body["next_page"] is None
            break
        body = httpx.get(body["next_page"], headers=AUTH).json()
    assert len(ids) == len(set(ids)) == total
    assert sorted(times) == times  # order=asc: oldest first


def test_dates_are_inclusive_iso_8601_on_start_time(sandbox):
    data = CallRailData.of(sandbox.company)
    call = calls_in_world(sandbox)[5]
    start = call.at
    from sync_pipelines_sandbox.callrail.api import stamp

    exact = get(sandbox, f"{ACCOUNT}/calls.json", start_date=stamp(start), end_date=stamp(start))
    assert [c["id"] for c in exact.json()["calls"]] == [call.id]
    day = stamp(start)[:10]  # a date alone: the account's whole day
    whole = get(sandbox, f"{ACCOUNT}/calls.json", start_date=day, end_date=day, per_page=250)
    assert call.id in {c["id"] for c in whole.json()["calls"]}
    assert all(c["start_time"].startswith(day) for c in whole.json()["calls"])
    assert data.one("calls", call.id) is not None
    bad = get(sandbox, f"{ACCOUNT}/calls.json", start_date="yesterday")
    assert bad.status_code == 400 and "start_date" in bad.json()["error"]
    old = get(sandbox, f"{ACCOUNT}/calls.json", start_date="2024-01-01")
    assert old.status_code == 400 and "25 months" in old.json()["error"]


def test_extra_fields_only_when_asked(sandbox):
    plain = get(sandbox, f"{ACCOUNT}/calls.json", **ALL_TIME).json()["calls"][0]
    assert "transcription" not in plain and "note" not in plain and "start_time" in plain
    fields = "transcription,note,tags,lead_status"
    rich = get(sandbox, f"{ACCOUNT}/calls.json", fields=fields, **ALL_TIME).json()["calls"]
    assert {"transcription", "note", "tags", "lead_status"} <= set(rich[0])
    assert any(c["transcription"] for c in rich)
    assert get(sandbox, f"{ACCOUNT}/calls.json", fields="nope").status_code == 400


def test_spam_calls_leave_listings_and_pending_transcriptions_are_null(sandbox):
    data = CallRailData.of(sandbox.company)
    answered = [c for c in calls_in_world(sandbox) if c.fields["answered"]]
    hidden, pending = answered[0], answered[1]
    data.hide_call(hidden.id)
    data.transcription_pending(pending.id)
    listed = get(
        sandbox, f"{ACCOUNT}/calls.json", fields="transcription", per_page=250, **ALL_TIME
    ).json()["calls"]
    by_id = {c["id"]: c for c in listed}
    assert hidden.id not in by_id
    assert by_id[pending.id]["transcription"] is None
    assert get(sandbox, f"{ACCOUNT}/calls/{hidden.id}.json").status_code == 404
    data.finish_transcription(pending.id)
    one = get(sandbox, f"{ACCOUNT}/calls/{pending.id}.json", fields="transcription").json()
    assert one["transcription"].startswith("Agent:")


@pytest.mark.parametrize(
    ("path", "key", "time_key"),
    [
        ("form_submissions", "form_submissions", "submitted_at"),
        ("text-messages", "conversations", "last_message_at"),
    ],
)
def test_forms_and_conversations_page_by_offset(sandbox, path, key, time_key):
    kind = "form_submissions" if key == "form_submissions" else "text_messages"
    total = sum(1 for _ in CallRailData.of(sandbox.company).between(kind, 0, 2e9))
    body = get(sandbox, f"{ACCOUNT}/{path}.json", per_page=total, **ALL_TIME).json()
    assert body["total_pages"] == 1 and len(body[key]) == total  # exactly one page
    assert all(time_key in r for r in body[key])
    empty = get(sandbox, f"{ACCOUNT}/{path}.json", start_date="2026-01-01", end_date="2026-01-02")
    assert empty.json()[key] == [] and empty.json()["total_pages"] == 0
