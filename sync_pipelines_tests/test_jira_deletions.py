"""Jira deletions show only by absence: the emulator deletes an issue (gone from search, 404)
or moves it to another project (same id, new key), and the daily reconciliation lists exactly
the issues that still exist in the connection's projects, or raises."""

import httpx
import pytest

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourceError, SourcePermanentError
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.jira import SOURCE
from sync_pipelines.sources.jira.client import JiraResource
from sync_pipelines.sources.jira.sync import JiraOptions, floor_minute
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN, JiraSite
from sync_pipelines_sandbox.server import Sandbox

EMAIL_ENV, TOKEN_ENV = "TEST_JIRA_DELETIONS_EMAIL", "TEST_JIRA_DELETIONS_TOKEN"
SCOPE = "jira:acme:"
DAY_S = 86_400
SCOPED = ("PAY", "OPS")


def reconcile_run(sandbox, monkeypatch, projects=(), **settings) -> SourceRun:
    """A run of SOURCE.reconcile's lister over the last 30 days (a window narrower than the
    declared one, so the lower bound shows), on the emulator, unpaced."""
    monkeypatch.setenv(EMAIL_ENV, SANDBOX_JIRA_EMAIL)
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_JIRA_TOKEN)
    connection = Connection(
        "acme",
        "jira",
        credentials={"api_token": TOKEN_ENV, "email": EMAIL_ENV},
        base_url=sandbox.urls["jira"],
    )
    resource = JiraResource(rate_per_s=0, timeout_s=5, **settings)
    return SourceRun(
        context=None,
        connection=connection,
        resource=resource,
        client=resource.client_for(connection),
        options=JiraOptions(projects=projects),
        window=reconcile_window("acme", 30),
        previous=Previous(),
    )


def existing(site: JiraSite, since: float, projects=()) -> set[str]:
    """Every searchable issue of `projects` (all when empty) updated from a day before
    `since` on, that day's start floored to the minute (Kolkata's offset is whole minutes)."""
    bound_ms = floor_minute(since - DAY_S) * 1000
    return {
        f"{SCOPE}{i.id}"
        for i in site.searchable()
        if i.updated_ms >= bound_ms and (not projects or i.project.key in projects)
    }


def in_window(site: JiraSite, start: float, end: float, projects=()) -> set[str]:
    return {
        f"{SCOPE}{i.id}"
        for i in site.updated_between(start, end)
        if not projects or i.project.key in projects
    }


def served(sandbox) -> dict[str, int]:
    return {route: calls for route, calls in sandbox.knobs.calls.items() if calls}


# ------------------------------------------------------------------ the emulator
def test_a_deleted_issue_is_gone_from_search_and_answers_404(sandbox):
    site, url = sandbox.jira.site, sandbox.urls["jira"]
    auth = (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    issue = next(i for i in site.searchable() if i.project.key == "CORE")
    api = f"{url}/rest/api/3"
    assert httpx.get(f"{api}/issue/{issue.id}", auth=auth).json()["key"] == issue.key
    assert sandbox.jira.delete_issue(issue.key) is issue
    for ref in (issue.id, issue.key):
        gone = httpx.get(f"{api}/issue/{ref}", auth=auth)
        assert gone.status_code == 404
        assert gone.json()["errorMessages"] == [
            "Issue does not exist or you do not have permission to see it."
        ]
    found = httpx.get(
        f"{api}/search/jql", params={"jql": "project = CORE", "maxResults": 5000}, auth=auth
    ).json()
    assert found["isLast"] and issue.id not in {i["id"] for i in found["issues"]}
    assert len(found["issues"]) == sum(i.project.key == "CORE" for i in site.searchable())
    by_key = httpx.get(f"{api}/search/jql", params={"jql": f"key = {issue.key}"}, auth=auth)
    assert by_key.status_code == 400
    with pytest.raises(KeyError):
        sandbox.jira.delete_issue(issue.id)


def test_a_moved_issue_keeps_its_id_under_a_new_key_and_leaves_its_old_project(sandbox):
    site, url = sandbox.jira.site, sandbox.urls["jira"]
    auth = (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    api = f"{url}/rest/api/3"
    issue = next(i for i in site.searchable() if i.project.key == "PAY")
    old_key, before_ms = issue.key, issue.updated_ms
    last_core = max(i.number for i in site.issues.values() if i.project.key == "CORE")
    moved = sandbox.jira.move_issue(old_key, "CORE")
    assert moved.id == issue.id and moved.key == f"CORE-{last_core + 1}"
    assert before_ms < moved.updated_ms <= clock.now_epoch() * 1000  # a move is an update

    def ids(jql):
        body = httpx.get(f"{api}/search/jql", params={"jql": jql, "maxResults": 5000}, auth=auth)
        return {i["id"] for i in body.json()["issues"]}

    assert issue.id not in ids("project = PAY") and issue.id in ids("project = CORE")
    # Jira keeps a moved issue's former key: reads and JQL by it find the issue as it is now.
    read = httpx.get(f"{api}/issue/{old_key}", params={"fields": "project"}, auth=auth).json()
    assert read["id"] == issue.id and read["key"] == moved.key
    assert read["fields"]["project"]["key"] == "CORE"
    assert ids(f"key = {old_key}") == {issue.id}
    with pytest.raises(ValueError, match="cannot move"):
        sandbox.jira.move_issue(moved.key, "CORE")
    sandbox.jira.delete_issue(old_key)  # by its former key
    assert site.find(old_key) is None and site.find(moved.key) is None


# ------------------------------------------------------------------ the reconciliation
def test_the_reconciliation_is_declared_daily_and_staggered():
    # Every issue updated in 10 years: an ids-only page holds 5,000, so that costs little.
    assert SOURCE.reconcile.days == 3650 and SOURCE.reconcile.cron == "40 3 * * *"
    assert SOURCE.reconcile_pool == "jira_reconcile"


def test_the_lister_lists_exactly_the_window_of_every_visible_project(sandbox, monkeypatch):
    site = sandbox.jira.site
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=40)
    began = clock.now_epoch()
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.scope == SCOPE and listing.start == run.window.start_epoch
    assert began <= listing.end == listing.listed_at <= clock.now_epoch()  # began, up to now
    assert listing.doc_ids == existing(site, listing.start)
    assert in_window(site, listing.start, listing.end) <= listing.doc_ids
    # the lower bound holds: issues last updated long before the window are not listed
    older = {f"{SCOPE}{i.id}" for i in site.searchable()} - listing.doc_ids
    assert older and all(
        site.by_id[d.rpartition(":")[2]].updated_ms < (listing.start - DAY_S) * 1000 for d in older
    )
    # ids only, one query for every project: serverInfo, myself, then the pages of 40
    pages = -(-len(listing.doc_ids) // 40)
    assert served(sandbox) == {"serverInfo": 1, "myself": 1, "search/jql": pages} and pages > 2


def test_the_lister_keeps_to_the_configured_projects(sandbox, monkeypatch):
    site = sandbox.jira.site
    run = reconcile_run(sandbox, monkeypatch, projects=SCOPED)
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.doc_ids == existing(site, listing.start, SCOPED)
    assert in_window(site, listing.start, listing.end, SCOPED) <= listing.doc_ids
    assert listing.doc_ids < existing(site, listing.start)


def test_deleted_and_moved_away_issues_are_absent(sandbox, monkeypatch):
    site = sandbox.jira.site
    start = reconcile_window("acme", SOURCE.reconcile.days).start_epoch
    pay = sorted(in_window(site, start, clock.now_epoch(), ("PAY",)))
    deleted, moved_out = (d.rpartition(":")[2] for d in pay[:2])
    (before,) = SOURCE.reconcile.list_ids(reconcile_run(sandbox, monkeypatch, projects=SCOPED))
    assert {f"{SCOPE}{deleted}", f"{SCOPE}{moved_out}"} <= before.doc_ids
    sandbox.jira.delete_issue(deleted)
    sandbox.jira.move_issue(moved_out, "CORE")  # out of the connection's projects
    ops = in_window(site, start, clock.now_epoch(), ("OPS",))
    moved_within = site.by_id[min(ops).rpartition(":")[2]]
    sandbox.jira.move_issue(moved_within.id, "PAY")  # from one of its projects to another
    (listing,) = SOURCE.reconcile.list_ids(reconcile_run(sandbox, monkeypatch, projects=SCOPED))
    assert f"{SCOPE}{deleted}" not in listing.doc_ids
    assert f"{SCOPE}{moved_out}" not in listing.doc_ids
    assert f"{SCOPE}{moved_within.id}" in listing.doc_ids  # same id: its document stays
    assert listing.doc_ids == existing(site, listing.start, SCOPED)
    # a connection that reads every project still lists the issue moved to CORE
    (everything,) = SOURCE.reconcile.list_ids(reconcile_run(sandbox, monkeypatch))
    assert f"{SCOPE}{moved_out}" in everything.doc_ids
    assert f"{SCOPE}{deleted}" not in everything.doc_ids


def test_edits_and_deletions_while_the_listing_pages_miss_no_issue(sandbox, monkeypatch):
    site = sandbox.jira.site
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=40)
    get_json, pages, gone = run.client._jira._get_json, [], []

    def meddling(path, params=None, **kwargs):
        body = get_json(path, params=params, **kwargs)
        if path != "search/jql":
            return body
        if not pages:  # once page 1 is read: an edit, a deletion and an edit on page 1
            first = [site.by_id[i["id"]] for i in body["issues"]]
            sandbox.jira.edit_issue(first[0].key, comment="edited mid-listing")
            gone.append(sandbox.jira.delete_issue(first[1].id).id)
            sandbox.jira.edit_issue(first[2].key, summary="renamed mid-listing")
        pages.append(body)
        return body

    monkeypatch.setattr(run.client._jira, "_get_json", meddling)
    (listing,) = SOURCE.reconcile.list_ids(run)
    # the issue deleted after it was read stays listed (more than exists is harmless); the
    # edited ones keep their place in created order, and no later issue slips past a page
    assert listing.doc_ids == existing(site, listing.start) | {f"{SCOPE}{gone[0]}"}
    assert len(pages) == -(-len(listing.doc_ids) // 40) > 2


@pytest.mark.parametrize("kind", ["500", "503", "malformed", "html", "400"])
def test_a_second_page_failing_beyond_the_retries_makes_the_lister_raise(
    sandbox, monkeypatch, kind
):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=40, max_attempts=2)
    sandbox.knobs.inject("search/jql", kind, count=50, after=1)
    with pytest.raises(SourceError, match="jira connection 'acme'"):
        SOURCE.reconcile.list_ids(run)
    assert sandbox.knobs.calls["search/jql"] >= 2


def test_a_page_failing_within_the_retries_still_lists_everything(sandbox, monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=40)
    sandbox.knobs.inject("search/jql", "503", after=1)
    sandbox.knobs.inject("search/jql", "malformed", after=2)
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.doc_ids == existing(sandbox.jira.site, listing.start)
    assert run.client.stats.retries == 2


def test_a_configured_project_jira_refuses_is_a_value_error(sandbox, monkeypatch):
    run = reconcile_run(sandbox, monkeypatch, projects=("PAY", "NOPE"))
    with pytest.raises(ValueError, match=r"option 'projects' \['PAY', 'NOPE'\] cannot be"):
        SOURCE.reconcile.list_ids(run)


@pytest.mark.parametrize(
    "body",
    [
        {"isLast": True},
        {"issues": [{"id": "10001"}, {"key": "PAY-2"}], "isLast": True},
        {"issues": [{"id": "10001"}, {"id": ""}], "isLast": True},
        {"issues": [{"id": "10001"}, {"id": True}], "isLast": True},
        {"issues": ["10001"], "isLast": True},
        {"issues": [{"id": "10001"}], "isLast": False},
    ],
    ids=["no issues", "no id", "empty id", "boolean id", "not an object", "cut: not last"],
)
def test_a_malformed_or_cut_page_makes_the_lister_raise(sandbox, monkeypatch, body):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    run = reconcile_run(sandbox, monkeypatch)
    get_json = run.client._jira._get_json
    asked = []

    def scripted(path, params=None, **kwargs):
        if path != "search/jql":
            return get_json(path, params=params, **kwargs)
        asked.append(params)
        return body

    monkeypatch.setattr(run.client._jira, "_get_json", scripted)
    with pytest.raises(SourcePermanentError, match="jira connection 'acme': search/jql .*"
                       "malformed answer after 3 attempts"):
        SOURCE.reconcile.list_ids(run)
    assert len(asked) == 3  # the shared rule's attempts at a malformed body, then refused
    assert asked[0]["fields"] == "id" and asked[0]["maxResults"] == 5000


def test_a_30_day_reconciliation_of_the_demo_company_is_three_calls(monkeypatch):
    company = Company.generate(seed=7, messages=3000, days=5)  # the demo's company
    with Sandbox(company=company) as sandbox:
        run = reconcile_run(sandbox, monkeypatch)  # pages of Jira's largest, 5000
        (listing,) = SOURCE.reconcile.list_ids(run)
        site = sandbox.jira.site
        assert listing.doc_ids == existing(site, listing.start)
        assert served(sandbox) == {"serverInfo": 1, "myself": 1, "search/jql": 1}


def test_pages_without_is_last_end_where_the_token_does(sandbox, monkeypatch):
    """Jira's token is null on the last page; `isLast` may be absent. Numeric ids read as the
    sync reads them."""
    run = reconcile_run(sandbox, monkeypatch)
    get_json = run.client._jira._get_json
    pages = iter([
        {"issues": [{"id": "10001"}, {"id": 10002}], "nextPageToken": "t1"},
        {"issues": [{"id": "10003"}]},
    ])

    def scripted(path, params=None, **kwargs):
        return next(pages) if path == "search/jql" else get_json(path, params=params, **kwargs)

    monkeypatch.setattr(run.client._jira, "_get_json", scripted)
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.doc_ids == {f"{SCOPE}10001", f"{SCOPE}10002", f"{SCOPE}10003"}
