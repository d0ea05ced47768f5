"""The Tempo source against the Tempo and Jira emulators: windows, issue keys through Jira,
inactive projects, author names, edits and the asset's metadata."""

import dataclasses
import logging
import math

import httpx
import pytest
from dagster import DagsterEventType

from sync_pipelines import clock
from sync_pipelines.connections import Connection
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.partitions import partition_key, window_from_keys
from sync_pipelines.resilience import SourceAuthError, SourceError
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.tempo.data import FORMER_EMPLOYEE, SANDBOX_TEMPO_TOKEN
from sync_pipelines.sources.jira.client import JiraClient, JiraResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines.sources.tempo.client import TempoClient, TempoResource
from sync_pipelines.sources.tempo.sync import (
    TempoOptions,
    TempoSync,
    keys_in_text,
    worklog_text,
)
from sync_pipelines_tests.conftest import day, today

tempo_asset = source_asset("tempo")

ENV = {
    "TEST_TEMPO_TOKEN": SANDBOX_TEMPO_TOKEN,
    "TEST_JIRA_EMAIL": SANDBOX_JIRA_EMAIL,
    "TEST_JIRA_TOKEN": SANDBOX_JIRA_TOKEN,
}


# ------------------------------------------------------------------ pure functions
def test_text_reads_naturally():
    assert (
        worklog_text(4.5, "SUBS-123", "Ana Ruiz", "2026-11-20", "Fixed the retry loop")
        == "4.5 h on SUBS-123 by Ana Ruiz on 2026-11-20: Fixed the retry loop"
    )
    assert worklog_text(2.0, "OPS-7", "Kai Sato", "2026-11-21", "") == (
        "2 h on OPS-7 by Kai Sato on 2026-11-21"
    )


def test_only_keys_of_active_projects_count_as_mentions():
    active = frozenset({"SUBS", "CORE"})
    text = "Fixed UTF-8 decoding (SUBS-12), see CORE-3, XSUBS-9 and SUBS-12 again"
    assert keys_in_text(text, active) == ["SUBS-12", "CORE-3"]
    assert keys_in_text("Cleanup of LEGACY-4", active) == []
    assert keys_in_text("", active) == []


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"active_projects": "SUBS"}, "'active_projects'"),
        ({"jira_connection": ""}, "'jira_connection'"),
        ({"overlap_minutes": "2"}, "'overlap_minutes'"),
        ({"overlap_minutes": -1}, "'overlap_minutes'"),
        ({"projects": ["SUBS"]}, "'projects'"),
    ],
)
def test_bad_options_are_value_errors_naming_the_option(options, named):
    with pytest.raises(ValueError, match=f"tempo option.*{named}"):
        TempoOptions.from_connection(options, "tempo")


def test_options_defaults_and_null_projects():
    given = {"active_projects": None, "overlap_minutes": 5}
    options = TempoOptions.from_connection(given, "tempo")
    assert options == TempoOptions(active_projects=(), overlap_minutes=5.0)
    assert TempoOptions.from_connection(None, "tempo").overlap_minutes == 2.0


def test_resource_needs_an_api_url(monkeypatch):
    monkeypatch.delenv("TEMPO_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="tempo connection 'acme'.*TEMPO_BASE_URL.*base_url"):
        TempoResource().client_for(Connection("acme", "tempo"))


TOKEN_ENV = {"token": "TEST_TEMPO_TOKEN"}


def built(resource: TempoResource, base_url: str | None = None) -> TempoClient:
    connection = Connection("acme", "tempo", credentials=TOKEN_ENV, base_url=base_url)
    client = resource.client_for(connection)
    client.close()
    return client


def test_environment_is_read_when_a_client_is_built(monkeypatch, env):
    resource = TempoResource(page_size=50)  # as a run's config sets one field
    monkeypatch.setenv("TEMPO_BASE_URL", "https://api.eu.tempo.io")
    monkeypatch.setenv("TEMPO_RATE_PER_S", "0.5")
    client = built(resource)
    assert (client.http.host, client.page_size) == ("api.eu.tempo.io", 50)
    assert client.http.limiter.rate == 0.5


def test_base_url_precedence_connection_resource_env(monkeypatch, env):
    monkeypatch.setenv("TEMPO_BASE_URL", "https://env.tempo.test")
    configured = TempoResource(base_url="https://resource.tempo.test")
    assert built(configured, "https://connection.tempo.test").http.host == "connection.tempo.test"
    assert built(configured).http.host == "resource.tempo.test"
    assert built(TempoResource()).http.host == "env.tempo.test"


def test_defaults_documented_pace_and_page_limits(monkeypatch, env):
    monkeypatch.delenv("TEMPO_RATE_PER_S", raising=False)
    client = built(TempoResource(), "https://api.tempo.io")
    assert (client.http.limiter.rate, client.page_size) == (5.0, 1000)
    assert built(TempoResource(rate_per_s=0), "https://api.tempo.io").http.limiter.rate == 0
    with pytest.raises(ValueError, match="TempoResource.page_size must be between 1 and 5000"):
        built(TempoResource(page_size=5001), "https://api.tempo.io")


def test_the_token_never_follows_a_next_link_off_the_api_host():
    def handler(request: httpx.Request) -> httpx.Response:
        page = {"metadata": {"count": 0, "next": "https://elsewhere.test/4/worklogs?offset=50"}}
        return httpx.Response(200, json={**page, "results": []})

    http = HttpSourceClient(
        source="tempo",
        connection_id="acme",
        base_url="https://api.tempo.io",
        headers={"Authorization": "Bearer secret"},
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(SourceError, match="next page link .* leaves api.tempo.io"):
        list(TempoClient(http).worklogs(updated_from=0))


# ------------------------------------------------------------------ TempoSync on the emulators
@pytest.fixture(scope="module")
def emulators():
    with Sandbox(company=Company.generate(seed=11, messages=900, days=4)) as sb:
        yield sb


@pytest.fixture
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def tempo_sync(emulators, options: TempoOptions | None = None, page_size=40) -> TempoSync:
    connection = Connection(
        "acme", "tempo", credentials={"token": "TEST_TEMPO_TOKEN"}, base_url=emulators.urls["tempo"]
    )
    tempo = TempoResource(rate_per_s=0, page_size=page_size, timeout_s=5).client_for(connection)
    jira = JiraClient(
        connection_id="acme",
        server=emulators.urls["jira"],
        email=SANDBOX_JIRA_EMAIL,
        api_token=SANDBOX_JIRA_TOKEN,
        rate_per_s=0,
        timeout_s=5,
    )
    return TempoSync(tempo, jira, options or TempoOptions(), "acme")


def days_window(first: int, last: int):
    return window_from_keys([partition_key(day(first), "acme"), partition_key(day(last), "acme")])


def test_full_window_matches_ground_truth(emulators, env):
    store, site = emulators.tempo.store, emulators.jira.site
    live = {p.key for p in site.projects}
    window = days_window(-3, 0)
    calls = dict(emulators.knobs.calls)
    result = tempo_sync(emulators).run(window, None)
    in_window = store.updated_between(window.start_epoch, window.end_epoch)
    truth = {w.id: w for w in in_window if w.issue.project.key in live}
    docs = {d.metadata["worklog_id"]: d for d in result.documents}
    assert set(docs) == set(truth) and len(truth) > 100
    assert result.worklogs_skipped_inactive_project == len(in_window) - len(truth) > 0
    assert result.worklogs_skipped_unresolved == 0 and result.author_lookup_failures == 0
    assert result.worklogs_fetched >= len(in_window)
    for worklog_id, doc in docs.items():
        w = truth[worklog_id]
        author = w.author if w.author == FORMER_EMPLOYEE else site.users[w.author].display_name
        hours = round(w.seconds / 3600, 2)
        assert doc.text == f"{hours:g} h on {w.issue.key} by {author} on {w.start_date}: " + (
            w.description
        )
        assert doc.doc_id == f"tempo:acme:{w.id}" and doc.author == author
        assert doc.timestamp_epoch == w.updated == doc.metadata["timestamp_epoch"]
        assert doc.metadata["issue_key"] == w.issue.key and doc.title.startswith(
            f"Worklog {w.issue.key} · "
        )
        assert doc.metadata["issue_id"] == w.issue.id
        assert doc.metadata["project_key"] == w.issue.project.key
        mentioned = [k for k in w.keys_in_description if k.split("-")[0] in live]
        assert doc.metadata["mentioned_issue_keys"] == list(dict.fromkeys(mentioned))
        assert doc.metadata["hours"] == hours and doc.metadata["start_date"] == w.start_date
        assert doc.url == f"{emulators.urls['jira']}/browse/{w.issue.key}"
    # some worklogs name another (active) issue in their description: still on their own
    assert any(
        set(d.metadata["mentioned_issue_keys"]) - {d.metadata["issue_key"]} for d in docs.values()
    )
    # every key came from Jira by issue id, in batches, once each
    issue_ids = {w.issue.id for w in in_window}
    assert result.issue_cache_size == len(issue_ids)
    assert result.user_cache_size == len({w.author for w in truth.values()})
    used = {k: emulators.knobs.calls[k] - calls.get(k, 0) for k in emulators.knobs.calls}
    legacy_ids = {w.issue.id for w in in_window if w.issue.project.key not in live}
    assert used["issue"] == len(legacy_ids) > 0  # archived issues are not searchable
    # batches of 100 ids, each asked again at most once without the archived ids it named
    batches = math.ceil(len(issue_ids) / 100)
    assert batches < used["search/jql"] <= 2 * batches
    assert used["user/bulk"] == 1  # every author in one bulk lookup


def test_active_projects_option_skips_and_counts_the_rest(emulators, env):
    window = days_window(-3, 0)
    searches = emulators.knobs.calls["project/search"]
    options = TempoOptions(active_projects=("SUBS", "CORE"))
    result = tempo_sync(emulators, options).run(window, None)
    in_window = emulators.tempo.store.updated_between(window.start_epoch, window.end_epoch)
    kept = [w for w in in_window if w.issue.project.key in ("SUBS", "CORE")]
    assert {d.metadata["worklog_id"] for d in result.documents} == {w.id for w in kept}
    assert result.worklogs_skipped_inactive_project == len(in_window) - len(kept)
    assert emulators.knobs.calls["project/search"] == searches  # no need to ask Jira


def test_a_past_day_keeps_only_what_was_updated_that_day(emulators, env):
    window = days_window(-2, -2)
    result = tempo_sync(emulators, page_size=1000).run(window, None)
    live = {p.key for p in emulators.jira.site.projects}
    truth = [
        w
        for w in emulators.tempo.store.updated_between(window.start_epoch, window.end_epoch)
        if w.issue.project.key in live
    ]
    assert {d.metadata["worklog_id"] for d in result.documents} == {w.id for w in truth}
    assert result.worklogs_fetched > len(truth)  # updatedFrom has no upper bound
    assert result.high_water_mark == window.end_epoch


def test_incremental_run_picks_up_an_edit_with_the_same_id(emulators, env):
    window = days_window(0, 0)
    first = tempo_sync(emulators).run(window, None)
    assert first.mode == "full" and first.high_water_mark <= clock.now_epoch()
    live = {p.key for p in emulators.jira.site.projects}
    old = next(
        w
        for w in emulators.tempo.store.updated_between(0, window.start_epoch)
        if w.issue.project.key in live and w.author != FORMER_EMPLOYEE
    )
    emulators.tempo.edit_worklog(old.id, description="Rewrote the exporter", seconds=16200)
    second = tempo_sync(emulators).run(window, first.high_water_mark)
    assert second.mode == "incremental" and second.fetched_from == first.high_water_mark - 120
    docs = {d.doc_id: d for d in second.documents}
    edited = docs[f"tempo:acme:{old.id}"]
    assert edited.text.startswith(f"4.5 h on {old.issue.key} by ")
    assert edited.text.endswith(": Rewrote the exporter")
    assert all(d.timestamp_epoch >= second.fetched_from for d in second.documents)


def test_a_worklog_stays_on_its_issue_whatever_its_description_names(sandbox, env):
    live = {p.key for p in sandbox.jira.site.projects}
    store = sandbox.tempo.store
    worklog = next(
        w for w in store.ordered() if w.issue.project.key in live and not w.keys_in_description
    )
    other = next(i for i in sandbox.jira.site.searchable() if i.project != worklog.issue.project)
    store.edit_worklog(worklog.id, description=f"Blocked by {other.key}, then {worklog.issue.key}")
    window = days_window(0, 0)
    docs = {d.doc_id: d for d in tempo_sync(sandbox).run(window, None).documents}
    doc = docs[f"tempo:acme:{worklog.id}"]
    key = worklog.issue.key
    assert doc.title.startswith(f"Worklog {key} · ") and doc.text.startswith(
        f"{round(worklog.seconds / 3600, 2):g} h on {key} by "
    )
    assert doc.url.endswith(f"/browse/{key}")
    assert (doc.metadata["issue_key"], doc.metadata["issue_id"]) == (key, worklog.issue.id)
    assert doc.metadata["project_key"] == worklog.issue.project.key
    assert doc.metadata["mentioned_issue_keys"] == [other.key, key]


def test_an_issue_jira_cannot_resolve_is_skipped_never_taken_from_the_text(sandbox, env):
    live = next(iter(sandbox.jira.site.searchable()))
    gone = dataclasses.replace(live, id="990001", key="GONE-1")  # deleted, or not visible
    author = next(iter(sandbox.jira.site.users))
    worklog = sandbox.tempo.store.log_work(gone, author, 3600, f"Same as {live.key}")
    result = tempo_sync(sandbox).run(days_window(0, 0), None)
    assert f"tempo:acme:{worklog.id}" not in {d.doc_id for d in result.documents}
    assert result.worklogs_skipped_unresolved == 1


def test_author_names_fall_back_to_account_ids_when_the_lookup_fails(emulators, env, caplog):
    window = days_window(-3, 0)
    emulators.jira.unserved.add("user/bulk")  # a Jira that answers 404 to user/bulk
    calls = emulators.knobs.calls["user/bulk"]
    try:
        with caplog.at_level(logging.WARNING):
            result = tempo_sync(emulators).run(window, None)
    finally:
        emulators.jira.unserved.discard("user/bulk")
    authors = {d.metadata["author_account_id"] for d in result.documents}
    assert result.documents and result.author_lookup_failures == len(authors)
    assert all(d.author == d.metadata["author_account_id"] for d in result.documents)
    assert emulators.knobs.calls["user/bulk"] - calls == 1  # not asked again per batch
    warnings = [r for r in caplog.records if "author names" in r.getMessage()]
    assert len(warnings) == 1 and "HTTP 404" in warnings[0].getMessage()


def test_rejected_credentials_on_the_user_lookup_still_fail(emulators, env):
    emulators.knobs.inject("user/bulk", "401")
    with pytest.raises(SourceAuthError, match="credentials"):
        tempo_sync(emulators).run(days_window(-3, 0), None)


# ------------------------------------------------------------------ the asset in Dagster
@pytest.fixture
def tempo_harness(harness, env):
    tempo, jira = harness.sandbox.urls["tempo"], harness.sandbox.urls["jira"]
    harness.registry.write_text(
        "connections:\n"
        f"  - id: acme\n    source: tempo\n    base_url: {tempo}\n"
        "    credentials: {token: TEST_TEMPO_TOKEN}\n"
        "    options: {jira_connection: acme-site}\n"
        f"  - id: broken\n    source: tempo\n    base_url: {tempo}\n"
        "    credentials: {token: TEST_TEMPO_TOKEN}\n"
        f"  - id: acme-site\n    source: jira\n    base_url: {jira}\n"
        "    credentials: {api_token: TEST_JIRA_TOKEN, email: TEST_JIRA_EMAIL}\n"
    )
    harness.extra_resources = {
        "tempo": TempoResource(rate_per_s=0, page_size=100, timeout_s=5),
        "jira": JiraResource(rate_per_s=0, timeout_s=5),
    }
    return harness


def test_asset_reports_caches_and_skips(tempo_harness):
    h = tempo_harness
    result = h.sync(tempo_asset, [day(-1), day(0)])
    meta = h.metadata(result, "tempo")
    start = today().timestamp() - 86400
    in_window = h.sandbox.tempo.store.updated_between(start, clock.now_epoch())
    live = {p.key for p in h.sandbox.jira.site.projects}
    kept = {f"tempo:acme:{w.id}" for w in in_window if w.issue.project.key in live}
    assert {d.doc_id for d in h.documents(result, "tempo")} == kept
    assert meta["run_documents_written"] == len(kept)
    assert meta["run_worklogs_skipped_inactive_project"] == len(in_window) - len(kept)
    assert meta["run_issue_cache_size"] > 0 and meta["run_user_cache_size"] > 0
    assert 0 < meta["run_jira_api_calls"] < meta["run_api_calls"]
    assert meta["mode"] == "full" and meta["run_author_lookup_failures"] == 0


def test_asset_succeeds_on_a_jira_without_user_bulk(tempo_harness):
    h = tempo_harness
    h.sandbox.jira.unserved.add("user/bulk")
    result = h.sync(tempo_asset, [day(-1), day(0)], raise_on_error=False)
    assert result.success
    events = result.all_events
    assert not [e for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    docs = h.documents(result, "tempo")
    meta = h.metadata(result, "tempo")
    authors = {d.metadata["author_account_id"] for d in docs}
    assert all(d.author == d.metadata["author_account_id"] for d in docs)
    assert meta["run_author_lookup_failures"] == len(authors) > 0


def test_missing_jira_connection_fails_naming_the_option(tempo_harness):
    result = tempo_harness.sync(tempo_asset, [day(-1)], connection="broken", raise_on_error=False)
    events = result.all_events
    failure = [e for e in events if e.event_type == DagsterEventType.STEP_FAILURE][-1]
    message = failure.step_failure_data.error.message
    assert "tempo connection 'broken'" in message and "'jira_connection'" in message
    assert not [e for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert sum(tempo_harness.sandbox.knobs.calls.values()) == 0
