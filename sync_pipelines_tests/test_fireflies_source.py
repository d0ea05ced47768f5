"""The Fireflies source against its emulator: ground truth, sharing, project tags, paging,
GraphQL-level errors, partition modes, and the Dagster asset."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from sync_pipelines.connections import Connection
from sync_pipelines.documents import ACCESS_ALL
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import SourceAuthError, SourceError
from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
from sync_pipelines_sandbox.fireflies.data import SHARED_COMPANY_WIDE, FirefliesData
from sync_pipelines.sources.fireflies.client import (
    DOCUMENTED_RATE_PER_S,
    FirefliesResource,
    retry_after_s,
)
from sync_pipelines.sources.fireflies.sync import FirefliesOptions, FirefliesSync
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, today

fireflies_asset = source_asset("fireflies")

KEY_ENV = "TEST_FIREFLIES_KEY"


@pytest.fixture
def connection(sandbox, monkeypatch) -> Connection:
    monkeypatch.setenv(KEY_ENV, SANDBOX_FIREFLIES_API_KEY)
    return Connection("acme", "fireflies", credentials={"api_key": KEY_ENV},
                      base_url=sandbox.urls["fireflies"])


@pytest.fixture
def data(sandbox) -> FirefliesData:
    return FirefliesData.of(sandbox.company)


def run(connection, window, hwm=None, page_size=10, now=None, **options):
    resource = FirefliesResource(rate_per_s=0, page_size=page_size, timeout_s=10)
    with resource.client_for(connection) as client:
        result = FirefliesSync(client, FirefliesOptions.from_connection(options), "acme").run(
            window, hwm, now=now
        )
    return result, client


def window(first: int, last: int) -> SyncWindow:
    days = tuple(day(o) for o in range(first, last + 1))
    return SyncWindow("acme", today() + timedelta(days=first),
                      today() + timedelta(days=last + 1), days)


def pages_for(meetings: int, size: int) -> int:
    """Pages a listing of `meetings` takes: each page after the first starts on the last
    meeting of the one before (client.TranscriptPages), and a short page ends it."""
    return 1 if meetings < size else (meetings - size) // (size - 1) + 2


def people(sandbox, n):
    return [p for p in sandbox.company.people if not p.is_bot][:n]


# ------------------------------------------------------------------ documents
def test_documents_match_the_meetings(sandbox, connection, data):
    result, client = run(connection, window(-3, 0))
    expected = data.expected(window(-3, 0).start_epoch, time.time())
    docs = {d.metadata["meeting_id"]: d for d in result.documents}
    assert set(docs) == {m.id for m in expected} and len(expected) > 10
    for meeting in expected:
        doc, truth = docs[meeting.id], data.transcript(meeting)
        organizer = meeting.organizer
        emails = sorted({a.email.lower() for a in meeting.attendees})
        assert doc.doc_id == f"fireflies:acme:{meeting.id}"
        assert doc.title == meeting.title and doc.author == organizer.name
        assert doc.url == truth["transcript_url"]
        assert doc.timestamp_epoch == meeting.date
        assert doc.metadata["attendee_emails"] == emails
        assert doc.metadata["organizer"] == organizer.email
        assert doc.metadata["duration"] == meeting.duration_min
        assert doc.metadata["access"] == list(doc.access)
        lines = doc.text.split("\n")
        assert lines[0] == f"Meeting: {meeting.title}"
        assert lines[2] == f"Organizer: {organizer.name} <{organizer.email}>"
        assert f"Summary: {truth['summary']['overview']}" in lines
        spoken = lines[lines.index("Transcript:") + 1:]
        assert " ".join(line.split(": ", 1)[1] for line in spoken) == " ".join(
            s["text"] for s in truth["sentences"]
        )
        speakers = [line.split(": ", 1)[0] for line in spoken]
        assert all(a != b for a, b in zip(speakers, speakers[1:]))  # turns are merged
    assert result.meetings_shared + result.meetings_private == len(expected)
    assert result.sentences == sum(len(data.transcript(m)["sentences"]) for m in expected)
    assert client.stats.api_calls == client.pages_read == pages_for(len(expected), 10)


@pytest.mark.parametrize(
    "privacy, shared",
    [("teammates", True), ("teammates_and_participants", True), ("participants", False),
     ("participating_teammates", False), ("link", False), ("owner", None), ("", False)],
)
def test_access_follows_the_meeting_privacy(sandbox, connection, data, privacy, shared):
    who = people(sandbox, 3)
    meeting = data.add_meeting("Sharing check", who, privacy=privacy)
    result, _ = run(connection, window(0, 0) if meeting.date >= today().timestamp()
                    else window(-1, -1))
    (doc,) = [d for d in result.documents if d.metadata["meeting_id"] == meeting.id]
    if shared:
        assert doc.access == (ACCESS_ALL,)
    elif shared is None:
        assert doc.access == (who[0].email,)
    else:
        assert doc.access == tuple(sorted(p.email for p in who))
    assert (privacy in SHARED_COMPANY_WIDE) == (doc.access == (ACCESS_ALL,))


def test_project_tags_from_keywords_and_issue_keys(sandbox, connection, data):
    script = [
        (0, "The subscriptions page still double-charges on renewal."),
        (1, "I linked it to CORE-12 and PAY-7, and the export has to stay UTF-8."),
        (0, "Terraform is fine, nothing to do there."),
    ]
    meeting = data.add_meeting("Weekly", people(sandbox, 2), script=script, issue_keys=("CORE-12",))
    target = window(0, 0) if meeting.date >= today().timestamp() else window(-1, -1)
    keywords = {"SUBS": ["subscription", "billing"], "CORE": [], "OPS": ["kubernetes"]}
    result, _ = run(connection, target, project_keywords=keywords)
    (doc,) = [d for d in result.documents if d.metadata["meeting_id"] == meeting.id]
    assert doc.metadata["project_tags"] == ["CORE", "SUBS"]  # PAY and UTF are not configured
    assert doc.metadata["issue_keys"] == ["CORE-12"]
    result, _ = run(connection, target)  # no map: every issue-key-shaped word counts
    (doc,) = [d for d in result.documents if d.metadata["meeting_id"] == meeting.id]
    assert doc.metadata["project_tags"] == ["CORE", "PAY", "UTF"]


def test_generated_meetings_are_tagged_with_their_projects(connection, data):
    from sync_pipelines_sandbox.fireflies.data import PROJECT_TERMS

    result, _ = run(connection, window(-3, 0),
                    project_keywords={k: list(v) for k, v in PROJECT_TERMS.items()})
    by_id = {d.metadata["meeting_id"]: d for d in result.documents}
    for meeting_id, doc in by_id.items():
        meeting = data.meeting(meeting_id)
        assert meeting.project_key in doc.metadata["project_tags"]
        assert set(doc.metadata["issue_keys"]) <= set(meeting.issue_keys)
    assert result.meetings_tagged == len(by_id)


# ------------------------------------------------------------------ paging and errors
def test_pages_until_a_short_page_without_a_cap(sandbox, connection, data):
    result, client = run(connection, window(-3, 0), page_size=1)
    n = len(data.expected(window(-3, 0).start_epoch, time.time()))
    assert len(result.documents) == n
    assert client.pages_read == n + 1 == sandbox.knobs.calls["transcripts"]


def test_graphql_rate_limit_is_waited_out(sandbox, connection, data):
    sandbox.fireflies.inject_error("too_many_requests", count=1, retry_after_s=1)
    started = time.monotonic()
    result, client = run(connection, window(-1, -1))
    assert time.monotonic() - started >= 0.9
    assert client.stats.rate_limited == 1
    expected = data.expected(window(-1, -1).start_epoch, window(-1, -1).end_epoch)
    assert {d.metadata["meeting_id"] for d in result.documents} == {m.id for m in expected}


def test_graphql_server_errors_and_truncated_bodies_are_retried(sandbox, connection, data):
    expected = data.expected(window(-1, -1).start_epoch, window(-1, -1).end_epoch)
    sandbox.fireflies.inject_error("internal_server_error", count=2)
    result, client = run(connection, window(-1, -1))
    assert client.stats.retries == 2 and len(result.documents) == len(expected)
    sandbox.knobs.inject("transcripts", "malformed")
    result, client = run(connection, window(-1, -1))
    assert client.stats.retries == 1 and len(result.documents) == len(expected)


@pytest.mark.parametrize("how", ["graphql", "http"])
def test_auth_errors_fail_fast_naming_the_connection(sandbox, connection, how):
    if how == "graphql":
        sandbox.fireflies.set_api_key("rotated")
    else:
        sandbox.knobs.inject("transcripts", "401")
    with pytest.raises(SourceAuthError, match="fireflies connection 'acme'") as caught:
        run(connection, window(-1, -1))
    assert SANDBOX_FIREFLIES_API_KEY not in str(caught.value)
    assert sum(sandbox.knobs.calls.values()) == 1


def test_other_graphql_errors_fail_with_the_message(sandbox, connection):
    sandbox.fireflies.inject_error("paid_required")
    with pytest.raises(SourceError, match="Injected paid_required error") as caught:
        run(connection, window(-1, -1))
    assert not isinstance(caught.value, SourceAuthError)
    assert sandbox.knobs.calls["transcripts"] == 1


def test_retry_after_hints():
    now = 1_800_000_000.0
    assert retry_after_s((now + 5) * 1000, now) == pytest.approx(5)
    assert retry_after_s(now + 7, now) == pytest.approx(7)
    assert retry_after_s("2027-01-15T08:00:05Z", 1_800_000_000.0) == pytest.approx(5)
    assert retry_after_s(3, now) == 3
    assert retry_after_s(None, now) is None and retry_after_s("soon", now) is None


@pytest.mark.parametrize(
    "options, named",
    [({"project_keywords": ["SUBS"]}, "fireflies option 'project_keywords'"),
     ({"project_keywords": {"subs": ["x"]}}, "fireflies option 'project_keywords'"),
     ({"project_keywords": {"SUBS": "billing"}}, "fireflies option 'project_keywords'"),
     ({"lookback_hours": -1}, "fireflies option 'lookback_hours'"),
     ({"lookback_hours": "six"}, "fireflies option 'lookback_hours'"),
     ({"projects": []}, "unknown fireflies option 'projects'")],
)
def test_bad_options_name_the_option(options, named):
    with pytest.raises(ValueError, match=named):
        FirefliesOptions.from_connection(options, "fireflies")


def test_options_default_and_accept_null_keywords():
    options = FirefliesOptions.from_connection(
        {"project_keywords": None, "lookback_hours": 2}, "fireflies"
    )
    assert options == FirefliesOptions(project_keywords={}, lookback_hours=2.0)
    keywords = {"SUBS": [" billing ", "subscription"]}
    parsed = FirefliesOptions.from_connection({"project_keywords": keywords}, "fireflies")
    assert parsed.project_keywords == {"SUBS": ("billing", "subscription")}
    assert parsed.lookback_hours == 6.0


def test_bad_page_size_names_the_field(connection):
    with pytest.raises(ValueError, match="FirefliesResource.page_size must be between 1 and 50"):
        FirefliesResource(page_size=51).client_for(connection)


# ------------------------------------------------------------------ the resource
@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("FIREFLIES_BASE_URL", raising=False)
    monkeypatch.delenv("FIREFLIES_RATE_PER_S", raising=False)


def test_environment_is_read_when_a_client_is_built(sandbox, connection, data, no_env,
                                                      monkeypatch):
    resource = FirefliesResource(page_size=10)  # a run config naming only the page size
    monkeypatch.setenv("FIREFLIES_BASE_URL", sandbox.urls["fireflies"] + "/graphql")
    monkeypatch.setenv("FIREFLIES_RATE_PER_S", "0")
    unset = Connection("acme", "fireflies", credentials={"api_key": KEY_ENV})
    with resource.client_for(unset) as client:
        assert client.http.limiter.rate == 0 and client.page_size == 10
        result = FirefliesSync(client, FirefliesOptions(), "acme").run(window(-1, -1), None)
    expected = data.expected(window(-1, -1).start_epoch, window(-1, -1).end_epoch)
    assert {d.metadata["meeting_id"] for d in result.documents} == {m.id for m in expected}


def test_base_url_precedence_connection_resource_environment_default(connection, no_env,
                                                                       monkeypatch):
    def host(resource, base_url=None):
        conn = Connection("acme", "fireflies", credentials={"api_key": KEY_ENV},
                          base_url=base_url)
        with resource.client_for(conn) as client:
            return client.http.host

    assert host(FirefliesResource()) == "api.fireflies.ai"
    monkeypatch.setenv("FIREFLIES_BASE_URL", "https://env.example")
    assert host(FirefliesResource()) == "env.example"
    assert host(FirefliesResource(base_url="https://resource.example")) == "resource.example"
    assert host(FirefliesResource(base_url="https://resource.example"),
                "https://conn.example/graphql") == "conn.example"


def test_resource_defaults_stay_fireflies(connection, no_env, monkeypatch):
    with FirefliesResource().client_for(connection) as client:
        assert client.page_size == 50 and client.http.limiter.rate == DOCUMENTED_RATE_PER_S == 1
        assert client.http.retry_limits["max_rate_limit_waits"] == 10
    assert FirefliesResource().timeout_s == 60.0 and FirefliesResource().max_attempts == 6
    monkeypatch.setenv("FIREFLIES_RATE_PER_S", "-1")
    with pytest.raises(ValueError, match="FIREFLIES_RATE_PER_S must be >= 0"):
        FirefliesResource().client_for(connection)


# ------------------------------------------------------------------ partition modes
def test_today_with_a_mark_reads_from_the_mark_minus_the_lookback(sandbox, connection, data):
    now = time.time()
    today_window = window(0, 0)
    mark = now - 600
    added = data.add_meeting("Late standup", people(sandbox, 2), date=max(
        today_window.start_epoch + 1, now - 300))
    result, _ = run(connection, today_window, hwm=mark, now=now, lookback_hours=0.5)
    since = max(today_window.start_epoch, mark - 1800)
    expected = {m.id for m in data.expected(since, now)}
    assert result.mode == "incremental" and result.high_water_mark == now
    assert added.id in expected
    assert {d.metadata["meeting_id"] for d in result.documents} == expected
    full, _ = run(connection, window(-1, -1), hwm=window(-1, -1).end_epoch + 5)
    assert full.mode == "full" and full.high_water_mark == window(-1, -1).end_epoch


# ------------------------------------------------------------------ the asset
def test_asset_run_rerun_and_rename_keep_doc_ids(harness, sandbox, monkeypatch, data):
    monkeypatch.setenv(KEY_ENV, SANDBOX_FIREFLIES_API_KEY)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: fireflies\n"
        f"    base_url: {sandbox.urls['fireflies']}\n"
        f"    credentials: {{api_key: {KEY_ENV}}}\n"
        "    options: {project_keywords: {SUBS: [subscription, billing]}, lookback_hours: 2}\n"
    )
    harness.extra_resources = {
        "fireflies": FirefliesResource(base_url="http://unused.invalid", rate_per_s=0,
                                       page_size=10)
    }
    first = harness.sync(fireflies_asset, [day(-1)])
    docs = harness.documents(first, "fireflies")
    meta = harness.metadata(first, "fireflies")
    assert meta["mode"] == "full" and meta["documents_written"] == len(docs) > 0
    for key in ("meetings_fetched", "pages_read", "meetings_shared", "meetings_private",
                "meetings_tagged", "sentences", "api_calls"):
        assert f"run_{key}" in meta and key not in meta
    renamed = docs[0].metadata["meeting_id"]
    data.rename(renamed, "Renamed meeting")
    again = harness.documents(harness.sync(fireflies_asset, [day(-1)]), "fireflies")
    assert sorted(d.doc_id for d in again) == sorted(d.doc_id for d in docs)
    (doc,) = [d for d in again if d.metadata["meeting_id"] == renamed]
    assert doc.title == "Renamed meeting"
