"""The Jira source against the Jira emulator: windows, paging, documents, edits and errors."""

import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterEventType
from jira import JIRAError

from sync_pipelines import clock
from sync_pipelines.connections import Connection
from sync_pipelines.paging import PagingError
from sync_pipelines.partitions import partition_key, window_from_keys
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN, plain_text
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines.sources.jira.client import DOCUMENTED_RATE_PER_S, JiraClient, JiraResource
from sync_pipelines.sources.jira.sync import (
    JiraOptions,
    JiraSync,
    adf_text,
    build_jql,
    floor_minute,
)
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, today

jira_asset = source_asset("jira")

EMAIL_ENV, TOKEN_ENV = "TEST_JIRA_EMAIL", "TEST_JIRA_TOKEN"


# ------------------------------------------------------------------ pure functions
def text(value):
    return {"type": "text", "text": value}


def node(kind, *content, **attrs):
    return {"type": kind, "content": list(content), **({"attrs": attrs} if attrs else {})}


def test_adf_is_flattened_to_readable_text():
    doc = node(
        "doc",
        node("heading", text("Plan"), level=2),
        node(
            "paragraph",
            text("Ask "),
            {"type": "mention", "attrs": {"id": "712020:x", "text": "@Ana Ruiz"}},
            text(" "),
            {"type": "emoji", "attrs": {"shortName": ":tada:", "text": "🎉"}},
            {"type": "hardBreak"},
            {"type": "inlineCard", "attrs": {"url": "https://example.test/pr/1"}},
        ),
        node("paragraph"),
        node(
            "orderedList",
            node(
                "listItem",
                node("paragraph", text("first")),
                node("bulletList", node("listItem", node("paragraph", text("nested")))),
            ),
            node("listItem", node("paragraph", text("second"))),
        ),
        {"type": "rule"},
        node("codeBlock", text("retry(3)")),
        node("mediaSingle", {"type": "media", "attrs": {"id": "m1"}}),
    )
    assert adf_text(doc) == (
        "Plan\nAsk @Ana Ruiz 🎉\nhttps://example.test/pr/1\n1. first\n  - nested\n2. second\n"
        "retry(3)"
    )
    assert adf_text("Plain *wiki* text\n") == "Plain *wiki* text"
    assert adf_text(None) == ""


def test_jql_uses_the_account_zone_and_minutes():
    window = window_from_keys([partition_key("2026-03-01", "acme")])
    jql = build_jql("SUBS", window.start_epoch, window.end_epoch, ZoneInfo("Asia/Kolkata"))
    assert jql == (
        'project = "SUBS" AND updated >= "2026-03-01 05:30" AND updated < "2026-03-02 05:30" '
        "ORDER BY updated ASC"
    )


def test_bounds_in_a_repeated_hour_are_widened():
    london = ZoneInfo("Europe/London")
    # 2026-10-25: clocks go back at 02:00 BST; 00:00 UTC is 01:00 BST, a wall time seen twice
    window = window_from_keys([partition_key("2026-10-25", "acme")])
    jql = build_jql("OPS", window.start_epoch, window.end_epoch, london)
    assert 'updated >= "2026-10-25 00:00"' in jql and 'updated < "2026-10-26 00:00"' in jql


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"projects": "SUBS"}, "jira option 'projects'"),
        ({"projects": ["subs"]}, "jira option 'projects'"),
        ({"overlap_minutes": -1}, "jira option 'overlap_minutes'"),
        ({"overlap_minutes": True}, "jira option 'overlap_minutes'"),
        ({"recent_comments": "5"}, "jira option 'recent_comments'"),
        ({"project": ["SUBS"]}, "unknown jira option 'project'"),
    ],
)
def test_bad_options_are_value_errors_naming_the_option(options, named):
    with pytest.raises(ValueError, match=named):
        JiraOptions.from_connection(options, "jira")


def test_options_default_and_accept_null_projects():
    options = JiraOptions.from_connection({"projects": None, "overlap_minutes": 1}, "jira")
    assert options == JiraOptions(projects=(), overlap_minutes=1.0, recent_comments=5)


# ------------------------------------------------------------------ the resource
def connection(base_url=None) -> Connection:
    return Connection(
        "acme", "jira", credentials={"api_token": TOKEN_ENV, "email": EMAIL_ENV}, base_url=base_url
    )


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv(EMAIL_ENV, SANDBOX_JIRA_EMAIL)
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_JIRA_TOKEN)
    monkeypatch.delenv("JIRA_BASE_URL", raising=False)
    monkeypatch.delenv("JIRA_RATE_PER_S", raising=False)


def test_resource_needs_a_site_url(secrets):
    with pytest.raises(ValueError, match="jira connection 'acme' has no API URL") as failure:
        JiraResource().client_for(connection())
    assert "JIRA_BASE_URL" in str(failure.value) and "https://<site>.atlassian.net" in str(
        failure.value
    )


def test_environment_is_read_when_a_client_is_built(secrets, monkeypatch):
    resource = JiraResource(page_size=10)  # a run config naming only the page size
    monkeypatch.setenv("JIRA_BASE_URL", "https://env.atlassian.net")
    monkeypatch.setenv("JIRA_RATE_PER_S", "3")
    jira = resource.client_for(connection())
    assert jira.site_url == "https://env.atlassian.net"
    assert jira.limiter.rate == 3.0 and jira.page_size == 10
    jira.close()


def test_site_url_precedence_is_connection_then_resource_then_environment(secrets, monkeypatch):
    monkeypatch.setenv("JIRA_BASE_URL", "https://env.atlassian.net")
    resource = JiraResource(base_url="https://resource.atlassian.net")
    assert resource.client_for(connection()).site_url == "https://resource.atlassian.net"
    by_connection = resource.client_for(connection("https://conn.atlassian.net/"))
    assert by_connection.site_url == "https://conn.atlassian.net"


def test_resource_defaults_stay_jiras(secrets):
    jira = JiraResource(base_url="https://acme.atlassian.net").client_for(connection())
    assert jira.page_size == 100 and jira.limiter.rate == DOCUMENTED_RATE_PER_S == 10.0
    assert JiraResource().max_rate_limit_waits == 8 and JiraResource().timeout_s == 30.0
    with pytest.raises(ValueError, match="JiraResource.page_size must be between 1 and 100"):
        JiraResource(base_url="https://acme.atlassian.net", page_size=101).client_for(connection())


# ------------------------------------------------------------------ JiraSync on the emulator
@pytest.fixture(scope="module")
def emulators():
    with Sandbox(company=Company.generate(seed=11, messages=900, days=4)) as sb:
        yield sb


def client(emulators, page_size=20) -> JiraClient:
    return JiraClient(
        connection_id="acme",
        server=emulators.urls["jira"],
        email=SANDBOX_JIRA_EMAIL,
        api_token=SANDBOX_JIRA_TOKEN,
        rate_per_s=0,
        page_size=page_size,
        timeout_s=5,
    )


def days_window(first: int, last: int):
    return window_from_keys([partition_key(day(first), "acme"), partition_key(day(last), "acme")])


def expected_text(site, issue, comments=5) -> str:
    parts = [f"{issue.key}: {issue.summary}"]
    if issue.description:
        parts.append(plain_text(issue.description, site.users))
    if comments and issue.comments:
        lines = ["Recent comments:"]
        for c in issue.comments[-comments:]:
            when = time.strftime("%Y-%m-%d", time.gmtime(c.created_ms / 1000))
            author = site.users[c.author].display_name
            lines.append(f"- {author} ({when}): {plain_text(c.body, site.users)}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def test_full_window_matches_ground_truth_text_and_metadata(emulators):
    site = emulators.jira.site
    window = days_window(-3, 0)
    calls_before = emulators.knobs.calls["search/jql"]
    result = JiraSync(client(emulators, page_size=7), JiraOptions(), "acme").run(window, None)
    truth = {i.id: i for i in site.updated_between(window.start_epoch, window.end_epoch)}
    docs = {d.doc_id: d for d in result.documents}
    assert set(docs) == {f"jira:acme:{i}" for i in truth} and len(truth) > 200
    per_project = {}
    for issue in truth.values():
        per_project[issue.project.key] = per_project.get(issue.project.key, 0) + 1
    # every project read separately, each to its last page of 7: no cap anywhere
    assert emulators.knobs.calls["search/jql"] - calls_before == sum(
        -(-n // 7) for n in per_project.values()
    )
    assert result.projects_read == len(emulators.company.projects)
    assert result.mode == "full" and result.jql_timezone == "Asia/Kolkata"
    assert result.comment_reads == sum(len(i.comments) > 20 for i in truth.values())
    for doc_id, doc in docs.items():
        issue = truth[doc_id.rpartition(":")[2]]
        assert doc.text == expected_text(site, issue)
        meta = doc.metadata
        assert meta["issue_key"] == issue.key and meta["project_key"] == issue.project.key
        assert meta["status"] == issue.status[0] and meta["priority"] == issue.priority[0]
        assert meta["issue_type"] == issue.issue_type[0] and meta["labels"] == issue.labels
        assert meta["assignee"] == (
            site.users[issue.assignee].display_name if issue.assignee else ""
        )
        assert meta["timestamp_epoch"] == doc.timestamp_epoch == issue.updated_ms / 1000
        assert doc.url == meta["url"] == f"{emulators.urls['jira']}/browse/{issue.key}"
        assert doc.title == f"{issue.key}: {issue.summary}" and doc.access == ("all",)
        assert doc.author == site.users[issue.reporter].display_name


def test_configured_projects_and_comment_count(emulators):
    site = emulators.jira.site
    window = days_window(-3, 0)
    options = JiraOptions(projects=("PAY", "OPS"), recent_comments=1)
    result = JiraSync(client(emulators), options, "acme").run(window, None)
    truth = [
        i
        for i in site.updated_between(window.start_epoch, window.end_epoch)
        if i.project.key in ("PAY", "OPS")
    ]
    assert {d.metadata["issue_key"] for d in result.documents} == {i.key for i in truth}
    by_key = {d.metadata["issue_key"]: d for d in result.documents}
    for issue in truth:
        assert by_key[issue.key].text == expected_text(site, issue, comments=1)
    with pytest.raises(ValueError, match="project 'NOPE' of option 'projects'"):
        JiraSync(client(emulators), JiraOptions(projects=("NOPE",)), "acme").run(window, None)


def test_incremental_run_reads_from_the_mark_minus_the_overlap(emulators):
    site = emulators.jira.site
    window = days_window(0, 0)
    before = clock.now_epoch()
    first = JiraSync(client(emulators), JiraOptions(), "acme").run(window, None)
    assert first.mode == "full" and before <= first.high_water_mark <= clock.now_epoch()
    old = site.updated_between(window.start_epoch - 3 * 86400, window.start_epoch)[0]
    emulators.jira.edit_issue(old.key, summary="Retry storms after the deploy")
    second = JiraSync(client(emulators), JiraOptions(), "acme").run(window, first.high_water_mark)
    assert second.mode == "incremental"
    assert second.fetched_from == floor_minute(first.high_water_mark - 120)
    docs = {d.metadata["issue_key"]: d for d in second.documents}
    assert docs[old.key].title == f"{old.key}: Retry storms after the deploy"
    assert docs[old.key].doc_id == f"jira:acme:{old.id}"
    # exactly what changed since the mark less the overlap (the edit among them), whatever the
    # hour: just after midnight the first run may have found nothing at all
    expected = site.updated_between(second.fetched_from, window.end_epoch)
    assert {d.metadata["issue_key"] for d in second.documents} == {i.key for i in expected}
    assert old.key in docs


def test_timeouts_and_malformed_pages_are_retried(emulators):
    knobs = emulators.knobs
    knobs.timeout_s = 1.0
    knobs.inject("search/jql", "timeout")
    knobs.inject("search/jql", "malformed")
    jira = JiraClient(
        connection_id="acme",
        server=emulators.urls["jira"],
        email=SANDBOX_JIRA_EMAIL,
        api_token=SANDBOX_JIRA_TOKEN,
        rate_per_s=0,
        page_size=10,
        timeout_s=0.3,
    )
    try:
        keys = [i["key"] for i in jira.search("project = SEC ORDER BY updated ASC", ["updated"])]
    finally:
        knobs.timeout_s = 30.0
    truth = [i.key for i in emulators.jira.site.searchable() if i.project.key == "SEC"]
    assert sorted(keys) == sorted(truth)
    assert jira.stats.retries == 2


def test_id_batches_split_when_jira_does_not_name_the_bad_ids(emulators, monkeypatch):
    jira = client(emulators)
    jira.connect()
    bad, asked = {"10007", "10042"}, []

    def search(jql, **kwargs):
        ids = jql[len("id in (") : -1].split(", ")
        asked.append(len(ids))
        if bad & set(ids):
            raise JIRAError(status_code=400, text="The query is not valid.")
        return {"issues": [{"id": i, "key": f"K-{i}"} for i in ids], "isLast": True}

    def issue(issue_id, fields=None):
        raise JIRAError(status_code=404, text="Issue does not exist")

    monkeypatch.setattr(jira._jira, "enhanced_search_issues", search)
    monkeypatch.setattr(jira._jira, "issue", issue)
    ids = [str(10_000 + n) for n in range(64)]
    keys = jira.issue_keys(ids)
    assert keys == {i: (None if i in bad else f"K-{i}") for i in ids}
    assert len(asked) < 30 and asked[0] == 64


def test_a_search_token_that_comes_back_stops_the_listing(emulators, monkeypatch):
    jira = client(emulators)
    jira.connect()
    pages = iter(["t1", "t2", "t1"])

    def search(jql, nextPageToken=None, **kwargs):
        return {"issues": [{"id": "1", "key": "K-1"}], "nextPageToken": next(pages)}

    monkeypatch.setattr(jira._jira, "enhanced_search_issues", search)
    with pytest.raises(PagingError, match="jira connection 'acme': search/jql: the cursor 't1'"):
        list(jira.search("project = K", ["updated"]))


# ------------------------------------------------------------------ the asset in Dagster
@pytest.fixture
def jira_harness(harness, monkeypatch):
    monkeypatch.setenv(EMAIL_ENV, SANDBOX_JIRA_EMAIL)
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_JIRA_TOKEN)
    monkeypatch.setenv("TEST_JIRA_BAD", "revoked")
    url = harness.sandbox.urls["jira"]
    harness.registry.write_text(
        "connections:\n"
        f"  - id: acme\n    source: jira\n    base_url: {url}\n"
        f"    credentials: {{api_token: {TOKEN_ENV}, email: {EMAIL_ENV}}}\n"
        f"  - id: broken\n    source: jira\n    base_url: {url}\n"
        f"    credentials: {{api_token: TEST_JIRA_BAD, email: {EMAIL_ENV}}}\n"
        "    options: {recent_comments: -1}\n"
    )
    harness.extra_resources = {"jira": JiraResource(rate_per_s=0, page_size=50, timeout_s=5)}
    return harness


def test_today_re_runs_incrementally_and_edits_resurface(jira_harness):
    h = jira_harness
    first = h.sync(jira_asset, [day(0)])
    meta = h.metadata(first, "jira")
    assert meta["mode"] == "full" and meta["run_projects_read"] == 8
    assert meta["jql_timezone"] == "Asia/Kolkata"
    site = h.sandbox.jira.site
    start = today().timestamp()
    assert {d.doc_id for d in h.documents(first, "jira")} == {
        f"jira:acme:{i.id}" for i in site.updated_between(start, start + 86400)
    }
    old = site.updated_between(start - 3 * 86400, start)[0]  # last updated before today
    h.sandbox.jira.edit_issue(old.key, comment="Still happening on 4.2, reopening.")
    second = h.sync(jira_asset, [day(0)])
    meta2 = h.metadata(second, "jira")
    assert meta2["mode"] == "incremental"
    assert meta2["run_fetched_from"] == floor_minute(meta["high_water_mark"] - 120)
    docs = {d.doc_id: d for d in h.documents(second, "jira")}
    assert docs[f"jira:acme:{old.id}"].text.endswith("Still happening on 4.2, reopening.")
    assert set(docs) == {
        f"jira:acme:{i.id}" for i in site.updated_between(meta2["run_fetched_from"], start + 86400)
    }


def test_bad_options_fail_without_retries_naming_the_connection(jira_harness):
    result = jira_harness.sync(jira_asset, [day(-1)], connection="broken", raise_on_error=False)
    failure = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE][-1]
    assert "jira connection 'broken'" in failure.step_failure_data.error.message
    assert "recent_comments" in failure.step_failure_data.error.message
    assert jira_harness.sandbox.knobs.calls["serverInfo"] == 0


def test_a_429_is_counted_and_waited_out(jira_harness):
    jira_harness.sandbox.knobs.inject("project/search", "429", retry_after=1)
    started = time.monotonic()
    result = jira_harness.sync(jira_asset, [day(-1)])
    assert time.monotonic() - started >= 1
    meta = jira_harness.metadata(result, "jira")
    assert meta["run_rate_limited_429"] == 1 and meta["run_retries"] >= 1
    assert jira_harness.sandbox.knobs.calls["project/search"] == 2
    assert timedelta(seconds=meta["run_duration_s"]) >= timedelta(seconds=1)
