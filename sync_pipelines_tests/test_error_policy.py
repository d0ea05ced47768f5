"""One decision for transient vs permanent errors (errors.py), for every client and source.

First the verdicts on the exceptions each SDK really raises; then every source asset against
its emulator: an answer that will not change (404, 400, 410, 422) fails the run after one
request and without Dagster's retries, a gateway's 502 page is retried, and a 200 HTML login
page is retried a few times, then named with its host, status and first bytes.
"""

from __future__ import annotations

import json
import re

import httpx
import notion_client.errors as notion_errors
import openai
import pytest
import requests
from dagster import DagsterEventType
from jira import JIRAError
from pinecone.errors import ApiError
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from sync_pipelines import resilience
from sync_pipelines.errors import (
    MalformedResponseError,
    RateLimited,
    SourceAuthError,
    SourcePermanentError,
    TransientError,
    Verdict,
    classify,
    classify_status,
    final_error,
    retry_after_of,
)
from sync_pipelines.sources import registry
from sync_pipelines_sandbox.contract import contract_for
from sync_pipelines_sandbox.server import emulators
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_source_contract import use_contract

T, P, A, R, M, U = (Verdict.TRANSIENT, Verdict.PERMANENT, Verdict.AUTH, Verdict.RATE_LIMITED,
                    Verdict.MALFORMED, Verdict.UNEXPECTED)


@pytest.mark.parametrize(
    "status, verdict",
    [(400, P), (404, P), (405, P), (410, P), (422, P), (302, P), (401, A), (403, A), (429, R),
     (408, T), (409, T), (425, T), (500, T), (502, T), (503, T), (504, T), (599, T)],
)
def test_status_verdicts(status, verdict):
    assert classify_status(status) is verdict


def slack_error(status: int, data: dict) -> SlackApiError:
    response = SlackResponse(client=None, http_verb="POST", api_url="https://slack.test/api/x",
                             req_args={}, data=data, headers={}, status_code=status)
    return SlackApiError("failed", response)


def raised_while_handling(outer: Exception, inner: Exception) -> Exception:
    """`outer` as an SDK raises it in an `except` block around a transport error."""
    outer.__context__ = inner
    return outer


REQUEST = httpx.Request("POST", "https://api.test/v1/embeddings")


@pytest.mark.parametrize(
    "exc, verdict",
    [
        (httpx.ReadTimeout("slow", request=REQUEST), T),
        (httpx.ConnectError("refused", request=REQUEST), T),
        (requests.ConnectionError("reset"), T),
        (TimeoutError(), T),
        (ConnectionResetError(), T),
        (JIRAError(status_code=404, text="Issue does not exist"), P),
        (JIRAError(status_code=409, text="conflict"), T),
        (JIRAError(status_code=401), A),
        (notion_errors.HTTPResponseError("x", 422, "bad", httpx.Headers(), "{}"), P),
        (notion_errors.HTTPResponseError("x", 503, "busy", httpx.Headers(), "{}"), T),
        (raised_while_handling(notion_errors.RequestTimeoutError(), httpx.ReadTimeout("slow")), T),
        (ApiError("gone", 410), P),
        (ApiError("too early", 425), T),
        (slack_error(200, {"ok": False, "error": "channel_not_found"}), P),
        (slack_error(500, {"ok": False, "error": "fatal_error"}), T),
        (json.JSONDecodeError("Expecting value", "<html>", 0), M),
        (requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0), M),
        (MalformedResponseError("not JSON"), M),
        (TransientError("GraphQL server error"), T),
        (RateLimited(3), R),
        (SourceAuthError("rejected"), A),
        (SourcePermanentError("gone"), P),
        (KeyError("bug"), U),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_sdk_exception_verdicts(exc, verdict):
    assert classify(exc) is verdict


def test_an_sdk_s_wrapper_of_a_transport_error_is_transient():
    wrapper = openai.APIConnectionError(request=REQUEST)
    assert classify(wrapper) is Verdict.UNEXPECTED
    wrapper.__cause__ = httpx.ConnectError("refused", request=REQUEST)  # as the SDK raises it
    assert classify(wrapper) is Verdict.TRANSIENT


def test_retry_after_is_read_from_any_sdk_s_headers():
    response = httpx.Response(429, headers={"Retry-After": "4"}, request=REQUEST)
    assert retry_after_of(openai.RateLimitError("slow down", response=response, body=None)) == 4
    assert retry_after_of(ApiError("slow down", 429, headers={"retry-after": "2"})) == 2
    ms = httpx.Response(503, headers={"retry-after-ms": "250"}, request=REQUEST)
    assert retry_after_of(openai.InternalServerError("busy", response=ms, body=None)) == 0.25
    assert retry_after_of(TimeoutError()) is None


def test_final_error_names_the_call_and_scrubs_the_body():
    body = '{"errorMessages": ["no issue"], "token": "abcdef123456"}'
    exc = JIRAError(status_code=404, text=body)
    error = final_error("jira connection 'acme': GET /rest/api/3/issue/1 on jira.test", exc,
                        Verdict.PERMANENT, 1, ["abcdef123456"])
    assert isinstance(error, SourcePermanentError)
    assert str(error).startswith("jira connection 'acme': GET /rest/api/3/issue/1 on jira.test: "
                                 "HTTP 404: ")
    assert "no issue" in str(error) and "abcdef123456" not in str(error)


# --- every source asset, against its emulator --------------------------------------------

# The HTTP answers below (a 404, a gateway's 502 page, a login page) exist only over HTTP: a
# source whose emulator is a database server (its own `serve`) has its SQL error rules tested
# beside its client instead.
HTTP_SOURCES = [e.name for e in emulators() if e.serve is None and e.name in registry.names()]
# Slack and HubSpot read in parallel threads, so a counted fault goes to the one call made
# before them (Slack's listing of channels, HubSpot's owners); a spreadsheet is read only when
# Drive says it changed, so faults go to that Drive call; every other source's listing is
# read by one thread.
FIRST_CALL = {"slack": "conversations.list", "hubspot": "owners", "google_sheets": "files.get"}
# Days a run reads something (a sheet has no history: only today's partition reads it).
READ_DAYS = {"google_sheets": (0, 0)}


def route(contract) -> str:
    return FIRST_CALL.get(contract.name, contract.list_route)


def read_day(contract, which: int) -> str:
    """The first (0) or second (1) day the tests run: yesterday and the day before."""
    return day(READ_DAYS.get(contract.name, (-1, -2))[which])


@pytest.fixture(params=HTTP_SOURCES)
def source(request, harness, monkeypatch):
    return use_contract(harness, monkeypatch, contract_for(request.param))


def failure_events(result):
    return [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]


def retry_events(result):
    return [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]


@pytest.fixture(autouse=True)
def no_backoff_sleeps(monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)


@pytest.mark.integration
def test_a_404_fails_the_run_at_once_naming_the_request(harness, source):
    harness.sandbox.knobs.inject(route(source), "404", count=1)  # a retry would succeed
    result = harness.sync(source.asset, [read_day(source, 0)], raise_on_error=False)
    assert not result.success and not retry_events(result)
    (failure,) = failure_events(result)
    assert failure.step_failure_data.user_failure_data is not None  # Failure(allow_retries=False)
    message = failure.step_failure_data.error.message
    assert f"{source.name} connection 'acme'" in message and "404" in message
    assert re.search(r"(GET|POST) /\S+ on 127\.0\.0\.1", message), message
    assert "?" not in message.split(" on 127.0.0.1")[0]


@pytest.mark.integration
@pytest.mark.parametrize("status", ["400", "410", "422"])
def test_other_permanent_answers_fail_at_once(harness, status):
    harness.sandbox.knobs.inject("conversations.list", status, count=1)
    result = harness.sync_slack([day(-1)], raise_on_error=False)
    assert not result.success and not retry_events(result)
    message = failure_events(result)[0].step_failure_data.error.message
    assert f"HTTP {status}" in message
    assert "slack connection 'acme': POST /api/conversations.list on 127.0.0.1" in message


@pytest.mark.integration
def test_a_gateway_502_page_is_retried(harness, source):
    harness.sandbox.knobs.inject(route(source), "502", count=1)
    result = harness.sync(source.asset, [read_day(source, 0)])
    assert harness.metadata(result, source.name)["run_retries"] >= 1


@pytest.mark.integration
def test_a_login_page_is_retried_a_few_times_then_named(harness, source):
    knobs = harness.sandbox.knobs
    knobs.inject(route(source), "html", count=2)
    result = harness.sync(source.asset, [read_day(source, 0)])
    assert harness.metadata(result, source.name)["run_retries"] >= 2

    knobs.reset()
    knobs.inject(route(source), "html", count=3)  # a fourth attempt would succeed
    result = harness.sync(source.asset, [read_day(source, 1)], raise_on_error=False)
    assert not result.success and not retry_events(result)
    assert knobs.calls[route(source)] == 3
    message = failure_events(result)[0].step_failure_data.error.message
    assert f"{source.name} connection 'acme'" in message and "on 127.0.0.1" in message
    assert "after 3 attempts" in message and "HTTP 200 (text/html" in message
    assert "<title>Sign in</title>" in message
