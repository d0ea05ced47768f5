"""The Sheets client's HTTP rules on answers the emulator does not give: Google's 403
rate-limit reasons (Drive's userRateLimitExceeded) are waited out like a 429, a 429 without
Retry-After backs off, any other 403 fails at once; batchGet answering the wrong number of
ranges is malformed."""

import json

import httpx
import pytest

from sync_pipelines import resilience
from sync_pipelines.errors import SourceError
from sync_pipelines.sources.google_sheets.client import GoogleHttp, SheetsClient


@pytest.fixture
def slept(monkeypatch):
    waits = []
    monkeypatch.setattr(resilience, "_sleep", waits.append)
    return waits


def client(answers: list[httpx.Response]) -> tuple[SheetsClient, list[httpx.Request]]:
    sent = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0)

    def http(stats=None):
        return GoogleHttp(source="google_sheets", connection_id="acme",
                          base_url="https://sheets.test", max_attempts=3, stats=stats,
                          transport=httpx.MockTransport(handle))  # fmt: skip

    sheets = http()
    return SheetsClient(sheets, http(sheets.stats)), sent


def google_error(status: int, reason: str) -> httpx.Response:
    body = {"error": {"code": status, "message": reason, "status": "X",
                      "errors": [{"reason": reason, "domain": "usageLimits"}]}}  # fmt: skip
    return httpx.Response(status, json=body)


def test_a_403_rate_limit_reason_is_waited_out(slept):
    ok = httpx.Response(200, json={"modifiedTime": "2026-12-01T10:00:00.000Z"})
    sheets, sent = client([google_error(403, "userRateLimitExceeded"), ok])
    assert sheets.modified_time("abc") == "2026-12-01T10:00:00.000Z"
    assert len(sent) == 2 and sheets.stats.as_metadata()["rate_limited_429"] == 1
    assert sent[0].url.path == "/drive/v3/files/abc"
    assert sent[0].url.params["fields"] == "modifiedTime,trashed"


def test_a_429_without_retry_after_backs_off(slept):
    ok = httpx.Response(200, json={"spreadsheetId": "abc", "valueRanges": [{"range": "A!A1"}]})
    sheets, sent = client([httpx.Response(429, json={}), ok])
    assert sheets.batch_get("abc", ["A"], "UNFORMATTED_VALUE", "FORMATTED_STRING") == [
        {"range": "A!A1"}
    ]
    assert slept and sent[-1].url.path == "/v4/spreadsheets/abc/values:batchGet"
    assert sent[-1].url.params["valueRenderOption"] == "UNFORMATTED_VALUE"


def test_other_403s_fail_at_once(slept):
    sheets, sent = client([google_error(403, "forbidden")] * 3)
    with pytest.raises(SourceError, match="google_sheets connection 'acme'"):
        sheets.spreadsheet("abc")
    assert len(sent) == 1


def test_a_batch_get_missing_ranges_is_malformed(slept):
    short = httpx.Response(200, content=json.dumps({"valueRanges": []}),
                           headers={"content-type": "application/json"})  # fmt: skip
    sheets, _ = client([short])
    with pytest.raises(SourceError, match="answered 0 ranges for 2"):
        sheets.batch_get("abc", ["A", "B"], "UNFORMATTED_VALUE", "FORMATTED_STRING")
