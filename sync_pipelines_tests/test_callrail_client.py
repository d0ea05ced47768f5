"""The CallRail client against answers written by hand from the reference: paging edge cases
(empty, exactly one page, a last short page, a missing total, relative pagination by link or
by offset, a link that repeats or leaves the host), the date window it asks for, 429 without
Retry-After, a bad token failing at once, and the account id's sources."""

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sync_pipelines.connections import Connection, CredentialError
from sync_pipelines.errors import MalformedResponseError, SourceAuthError, SourcePermanentError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import PagingError
from sync_pipelines.sources.callrail.client import CallRailClient, CallRailResource, iso

BASE = "https://api.callrail.com"
ACC = "ACC123"


def client(handler, page_size=None) -> tuple[CallRailClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = handler(request, len(seen))
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    http = HttpSourceClient(
        source="callrail",
        connection_id="t",
        base_url=BASE,
        headers={"Authorization": 'Token token="k"'},
        transport=httpx.MockTransport(record),
        backoff_s=0.01,
        max_backoff_s=0.05,
    )
    return CallRailClient(http, ACC, page_size), seen


def query(request: httpx.Request) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def forms(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"FRM{i}", "submitted_at": "2026-11-18T10:00:00Z"} for i in range(start, n)]


def offset_body(items, page, per_page, total_pages):
    return {
        "page": page,
        "per_page": per_page,
        "total_pages": total_pages,
        "total_records": len(items),
        "form_submissions": items,
    }


def test_offset_paging_empty_one_page_and_last_short_page():
    empty, seen = client(lambda r, n: offset_body([], 1, 10, 0))
    assert list(empty.form_submissions(0, 10, 10)) == [] and len(seen) == 1

    one, seen = client(lambda r, n: offset_body(forms(10), 1, 10, 1))
    assert [len(p) for p in one.form_submissions(0, 10, 10)] == [10] and len(seen) == 1

    def three_pages(request, n):
        page = int(query(request)["page"])
        return offset_body(forms(min(25, page * 10), (page - 1) * 10), page, 10, 3)

    short, seen = client(three_pages)
    assert [len(p) for p in short.form_submissions(0, 10, 10)] == [10, 10, 5]
    assert [query(r)["page"] for r in seen] == ["1", "2", "3"]


def test_a_short_page_without_a_total_does_not_end_the_listing():
    def pages(request, n):
        page = int(query(request)["page"])
        return {"form_submissions": forms(3) if page < 3 else []}  # no total_pages

    reader, seen = client(pages)
    assert [len(p) for p in reader.form_submissions(0, 10, 10)] == [3, 3]
    assert len(seen) == 3


def test_a_page_without_its_list_is_malformed():
    reader, seen = client(lambda r, n: {"page": 1, "total_pages": 1})
    with pytest.raises(SourcePermanentError, match="without a 'form_submissions' list"):
        list(reader.form_submissions(0, 10, 10))
    assert len(seen) == 3  # retried as a bad body, then failed


def relative(calls, more, following):
    return {"per_page": 2, "has_next_page": more, "next_page": following, "calls": calls}


def call(i):
    return {"id": f"CAL{i}", "start_time": "2026-11-18T10:00:00.000-05:00"}


def test_relative_paging_follows_links_with_their_own_query():
    link = f"{BASE}/v3/a/{ACC}/calls.json?relative_pagination=true&per_page=2&offset=1"

    def pages(request, n):
        if n == 1:
            return relative([call(0), call(1)], True, link)
        return relative([call(2)], False, None)

    reader, seen = client(pages)
    ids = [c["id"] for p in reader.calls(100, 200, 2) for c in p]
    assert ids == ["CAL0", "CAL1", "CAL2"]
    first = query(seen[0])
    assert first["relative_pagination"] == "true" and first["order"] == "asc"
    assert first["start_date"] == iso(100) and first["end_date"] == iso(200)
    assert "transcription" in first["fields"]
    assert query(seen[1]) == {"relative_pagination": "true", "per_page": "2", "offset": "1"}


def test_relative_paging_accepts_an_offset_number_and_an_empty_answer():
    def pages(request, n):
        return relative([call(n)], n < 2, 1 if n < 2 else None)

    reader, seen = client(pages)
    assert [c["id"] for p in reader.calls(0, 1, 5) for c in p] == ["CAL1", "CAL2"]
    assert query(seen[1])["offset"] == "1"
    nothing, _ = client(lambda r, n: {"per_page": 5, "has_next_page": False, "calls": []})
    assert list(nothing.calls(0, 1, 5)) == []


@pytest.mark.parametrize(
    ("following", "error"),
    [
        (f"{BASE}/v3/a/{ACC}/calls.json?offset=1", PagingError),  # comes back: a loop
        ("https://evil.example/calls.json?offset=1", PagingError),  # another host
        (None, MalformedResponseError),  # has_next_page without next_page
    ],
)
def test_relative_paging_refuses_loops_foreign_links_and_missing_links(following, error):
    reader, _ = client(lambda r, n: relative([call(n)], True, following))
    with pytest.raises(error):
        list(reader.calls(0, 1, 5))


def test_page_size_is_the_crm_setting_capped_at_250_unless_the_resource_sets_one():
    reader, seen = client(lambda r, n: offset_body([], 1, 10, 0))
    list(reader.form_submissions(0, 1, 1000))
    assert query(seen[0])["per_page"] == "250"
    fixed, seen = client(lambda r, n: offset_body([], 1, 10, 0), page_size=20)
    list(fixed.form_submissions(0, 1, 200))
    assert query(seen[0])["per_page"] == "20"


def test_429_without_retry_after_is_waited_out():
    def limited(request, n):
        if n == 1:
            return httpx.Response(429, json={"error": "Too Many Requests"})
        return offset_body(forms(1), 1, 10, 1)

    reader, seen = client(limited)
    assert [len(p) for p in reader.form_submissions(0, 1, 10)] == [1]
    assert reader.stats.rate_limited == 1 and len(seen) == 2


def test_a_bad_token_fails_at_once_without_the_key():
    reader, seen = client(lambda r, n: httpx.Response(401, json={"error": "denied"}))
    with pytest.raises(SourceAuthError) as failure:
        list(reader.calls(0, 1, 10))
    assert len(seen) == 1
    assert 'token="k"' not in str(failure.value)


def test_the_account_id_comes_from_the_option_or_the_credential(monkeypatch):
    monkeypatch.setenv("CR_KEY", "k")
    monkeypatch.setenv("CR_ACC", "ACC999")
    resource = CallRailResource(base_url=BASE, rate_per_s=0)
    by_option = Connection(
        id="a", source="callrail", credentials={"api_key": "CR_KEY"}, options={"account_id": "ACC1"}
    )
    by_credential = Connection(
        id="b", source="callrail", credentials={"api_key": "CR_KEY", "account_id": "CR_ACC"}
    )
    assert resource.client_for(by_option).account == "ACC1"
    assert resource.client_for(by_credential).account == "ACC999"
    with pytest.raises(CredentialError, match="account id"):
        resource.client_for(
            Connection(id="c", source="callrail", credentials={"api_key": "CR_KEY"})
        )
    with pytest.raises(ValueError, match="letters and digits"):
        bad = Connection(
            id="d",
            source="callrail",
            credentials={"api_key": "CR_KEY"},
            options={"account_id": "../../x"},
        )
        resource.client_for(bad)
    header = resource.client_for(by_option).http._client.headers["authorization"]
    assert header == 'Token token="k"'
    monkeypatch.delenv("CALLRAIL_RATE_PER_S", raising=False)
    assert CallRailResource().pace() == pytest.approx(1000 / 3600)  # the documented hour
