"""The reusable paginators against scripted answers: every item once, the end of each style
(including the edge cases vendors document), and no loops."""

import json

import httpx
import pytest

from sync_pipelines import resilience
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.paging import (
    PagingError,
    cursor_pages,
    dig,
    next_link_pages,
    offset_pages,
    page_token_pages,
)
from sync_pipelines.resilience import SourceError

RECORDS = [{"id": i} for i in range(23)]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda s: None)


def client(handler, base_url="https://api.vendor.test") -> tuple[HttpSourceClient, list]:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return handler(request)

    http = HttpSourceClient(
        source="vendor",
        connection_id="acme",
        base_url=base_url,
        headers={"Authorization": "Bearer s3cret"},
        transport=httpx.MockTransport(record),
    )
    return http, sent


def ok(body) -> httpx.Response:
    return httpx.Response(200, json=body)


def test_dig_reads_dotted_paths():
    assert dig({"records": {"cursor": "c1"}}, "records.cursor") == "c1"
    assert dig({"records": {}}, "records.cursor") is None
    assert dig({"a": [1]}, "a.b", "x") == "x"


def test_cursor_in_a_post_body_at_a_dotted_path():
    def handler(request):
        body = json.loads(request.content)
        start = int(body.get("cursor") or 0)
        assert body["filter"] == {"fromDateTime": "2026-11-18T00:00:00Z"}
        page = RECORDS[start : start + 10]
        records = {"totalRecords": len(RECORDS)}
        if start + 10 < len(RECORDS):
            records["cursor"] = str(start + 10)
        return ok({"records": records, "calls": page})

    http, sent = client(handler)
    got = list(
        cursor_pages(
            http,
            "/v2/calls/extensive",
            method="POST",
            json={"filter": {"fromDateTime": "2026-11-18T00:00:00Z"}},
            items="calls",
            cursor_out="records.cursor",
            cursor_in="cursor",
        )
    )
    assert got == RECORDS and len(sent) == 3
    assert "cursor" not in json.loads(sent[0].content)


def test_cursor_in_the_query_with_has_more():
    def handler(request):
        start = int(request.url.params.get("start_cursor") or 0)
        more = start + 5 < len(RECORDS)
        return ok(
            {
                "results": RECORDS[start : start + 5],
                "has_more": more,
                "next_cursor": str(start + 5) if more else None,
            }
        )

    http, sent = client(handler)
    got = list(
        cursor_pages(
            http,
            "/v1/users",
            items="results",
            cursor_out="next_cursor",
            cursor_in="start_cursor",
            has_more="has_more",
        )
    )
    assert got == RECORDS and len(sent) == 5


def test_a_cursor_that_comes_back_stops_the_listing():
    http, _ = client(lambda request: ok({"items": [{"id": 1}], "next": "same"}))
    with pytest.raises(PagingError, match="vendor connection 'acme': GET /x: the cursor 'same'"):
        list(cursor_pages(http, "/x", items="items", cursor_out="next", cursor_in="c"))


def test_a_page_without_its_items_is_retried_as_malformed_then_fails():
    http, sent = client(lambda request: ok({"unexpected": True}))
    with pytest.raises(SourceError, match="without a 'items' list"):
        list(cursor_pages(http, "/x", items="items", cursor_out="next", cursor_in="c"))
    assert len(sent) == 3  # the malformed budget


def test_next_link_is_followed_on_the_api_host_only():
    def handler(request):
        start = int(request.url.params.get("offset") or 0)
        nxt = start + 10
        link = f"https://api.vendor.test/4/worklogs?offset={nxt}" if nxt < len(RECORDS) else None
        return ok({"results": RECORDS[start:nxt], "metadata": {"next": link}})

    http, sent = client(handler)
    got = list(
        next_link_pages(http, "/4/worklogs", items="results", next_link="metadata.next",
                        params={"limit": 10})
    )
    assert got == RECORDS and len(sent) == 3
    assert sent[0].url.params["limit"] == "10"

    http, _ = client(lambda request: ok({"results": [], "metadata": {"next": "https://evil.test/x"}}))
    with pytest.raises(PagingError, match="leaves api.vendor.test"):
        list(next_link_pages(http, "/4/worklogs", items="results", next_link="metadata.next"))


def test_offset_paging_ends_on_an_empty_page_not_on_a_short_one():
    def handler(request):
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        # The vendor answers at most 7 per page whatever the limit.
        return ok({"data": RECORDS[offset : offset + min(limit, 7)]})

    http, sent = client(handler)
    got = list(offset_pages(http, "/contacts", items="data", limit=10))
    assert got == RECORDS
    assert [int(r.url.params["offset"]) for r in sent] == [0, 7, 14, 21, 23]


def test_page_number_paging_ends_at_total_pages():
    def handler(request):
        page, per_page = int(request.url.params["page"]), int(request.url.params["per_page"])
        start = (page - 1) * per_page
        return ok({"calls": RECORDS[start : start + per_page], "total_pages": 3})

    http, sent = client(handler)
    got = list(
        offset_pages(http, "/v3/a/1/calls.json", items="calls", limit=10, by_page=True,
                     offset_param="page", limit_param="per_page", total_pages="total_pages")
    )
    assert got == RECORDS and len(sent) == 3


def test_page_tokens_with_short_pages_and_an_empty_answer_without_the_key():
    pages = {None: (RECORDS[:3], "t1"), "t1": (RECORDS[3:4], "t2"), "t2": (RECORDS[4:], None)}

    def handler(request):
        items, token = pages[request.url.params.get("pageToken")]
        body = {"messages": items, "resultSizeEstimate": 99}
        if token:
            body["nextPageToken"] = token
        return ok(body)

    http, sent = client(handler)
    got = list(page_token_pages(http, "/gmail/v1/users/me/messages", items="messages",
                                params={"maxResults": 500}))
    assert got == RECORDS and len(sent) == 3

    http, _ = client(lambda request: ok({"resultSizeEstimate": 0}))
    assert list(page_token_pages(http, "/gmail/v1/users/me/messages", items="messages")) == []
