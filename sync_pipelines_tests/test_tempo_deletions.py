"""Tempo deletions show only by absence: the emulator deletes a worklog without a trace (404 by
id), and the daily reconciliation lists exactly the worklogs that still exist, or raises."""

from math import ceil

import httpx
import pytest
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import ARCHIVED_PROJECT
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.tempo.data import SANDBOX_TEMPO_TOKEN, TempoWorklogs

from sync_pipelines import clock, resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import MalformedResponseError, SourceError
from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines.sources.tempo import SOURCE
from sync_pipelines.sources.tempo.client import TempoClient, TempoResource
from sync_pipelines.sources.tempo.sync import TempoOptions

TOKEN_ENV = "TEST_TEMPO_DELETIONS_TOKEN"
SCOPE = "tempo:acme:"


def connection_to(sandbox, monkeypatch) -> Connection:
    monkeypatch.setenv(TOKEN_ENV, SANDBOX_TEMPO_TOKEN)
    return Connection("acme", "tempo", credentials={"token": TOKEN_ENV},
                      base_url=sandbox.urls["tempo"])


def reconcile_run(sandbox, monkeypatch, **settings) -> SourceRun:
    """The run SOURCE.reconcile gets over its declared window, on the emulator, unpaced."""
    connection = connection_to(sandbox, monkeypatch)
    resource = TempoResource(rate_per_s=0, timeout_s=5, **settings)
    return SourceRun(
        context=None,
        connection=connection,
        resource=resource,
        client=resource.client_for(connection),
        options=TempoOptions(),
        window=reconcile_window("acme", SOURCE.reconcile.days),
        previous=Previous(),
    )


def existing(store: TempoWorklogs, since: float) -> set[str]:
    """Every worklog Tempo has, updated at or after `since` (floored to the second, as
    `updatedFrom`), whatever its project."""
    return {f"{SCOPE}{w.id}" for w in store.ordered() if w.updated >= int(since)}


def pages_for(worklogs: int, size: int) -> int:
    """Pages a listing of `worklogs` takes: each page after the first starts on the last
    worklog of the one before, and the page without a next link ends it."""
    return 1 if worklogs <= size else ceil((worklogs - size) / (size - 1)) + 1


# ------------------------------------------------------------------ the emulator
def test_a_deleted_worklog_is_gone_from_listings_and_answers_404_by_id(sandbox):
    store, url = sandbox.tempo.store, sandbox.urls["tempo"]
    auth = {"Authorization": f"Bearer {SANDBOX_TEMPO_TOKEN}"}
    worklog_id = store.ordered()[3].id
    one = httpx.get(f"{url}/4/worklogs/{worklog_id}", headers=auth)
    assert one.status_code == 200 and one.json()["tempoWorklogId"] == worklog_id
    assert sandbox.tempo.delete_worklog(worklog_id).id == worklog_id
    gone = httpx.get(f"{url}/4/worklogs/{worklog_id}", headers=auth)
    assert gone.status_code == 404
    assert gone.json() == {"errors": [{"message": f"Worklog with id {worklog_id} does not exist"}]}
    listed = httpx.get(f"{url}/4/worklogs", params={"limit": 5000}, headers=auth).json()
    assert worklog_id not in {w["tempoWorklogId"] for w in listed["results"]}
    assert sandbox.knobs.calls["worklog"] == 2 and sandbox.knobs.calls["worklogs"] == 1
    assert httpx.get(f"{url}/4/worklogs/{worklog_id}").status_code == 401


# ------------------------------------------------------------------ the reconciliation
def test_the_reconciliation_lists_exactly_what_exists_after_deletions(sandbox, monkeypatch):
    store = sandbox.tempo.store
    ordered = store.ordered()
    deleted = {ordered[0].id, ordered[len(ordered) // 2].id}  # on the first page and later
    for worklog_id in deleted:
        sandbox.tempo.delete_worklog(worklog_id)
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=50)
    began = clock.now_epoch()
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.scope == SCOPE and listing.start == run.window.start_epoch
    assert began <= listing.end <= listing.listed_at <= clock.now_epoch()  # up to now
    assert listing.doc_ids == existing(store, listing.start)
    assert not listing.doc_ids & {f"{SCOPE}{i}" for i in deleted}
    # Worklogs of the archived project are listed too: more than the index holds is harmless.
    legacy = {f"{SCOPE}{w.id}" for w in store.ordered() if w.issue.project == ARCHIVED_PROJECT}
    assert legacy and legacy <= listing.doc_ids
    # Ids only: one listing, no Jira lookups, no reads by id.
    served = {route: calls for route, calls in sandbox.knobs.calls.items() if calls}
    assert served == {"worklogs": pages_for(len(listing.doc_ids), 50)} and served["worklogs"] > 2


@pytest.mark.parametrize("kind", ["500", "503", "malformed", "html", "400"])
def test_a_second_page_failing_beyond_the_retries_makes_the_lister_raise(
    sandbox, monkeypatch, kind
):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=50, max_attempts=2)
    sandbox.knobs.inject("worklogs", kind, count=50, after=1)
    with pytest.raises(SourceError, match="tempo connection 'acme'"):
        SOURCE.reconcile.list_ids(run)
    assert sandbox.knobs.calls["worklogs"] >= 2


def test_a_deletion_while_the_listing_is_paged_makes_the_lister_raise(sandbox, monkeypatch):
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=50)
    get, http = run.client.http.get, run.client.http

    def deleting(path, **kwargs):
        body = get(path, **kwargs)
        if kwargs["params"]["offset"] == 0:  # two worklogs of page 1 go: the rest shift back
            for worklog in body["results"][:2]:
                sandbox.tempo.delete_worklog(worklog["tempoWorklogId"])
        return body

    http.get = deleting
    with pytest.raises(SourceError, match="shifted while paged"):
        SOURCE.reconcile.list_ids(run)


def test_a_worklog_logged_while_the_listing_is_paged_is_harmless(sandbox, monkeypatch):
    store = sandbox.tempo.store
    run = reconcile_run(sandbox, monkeypatch, listing_page_size=50)
    get, logged = run.client.http.get, []

    def logging_work(path, **kwargs):
        if kwargs["params"]["offset"] == 0:
            first = store.ordered()[0]
            logged.append(store.log_work(first.issue, first.author, 900, "Late entry").id)
        return get(path, **kwargs)

    run.client.http.get = logging_work
    (listing,) = SOURCE.reconcile.list_ids(run)
    assert listing.doc_ids == existing(store, listing.start)
    assert f"{SCOPE}{logged[0]}" in listing.doc_ids


class ScriptedTempo:
    """The HTTP layer of a TempoClient, answering the listing from one scripted page."""

    label = "tempo connection 'acme'"

    def __init__(self, body):
        self.body = body
        self.stats = CallStats()

    def get(self, path, params, check):
        check(self.body)
        return self.body


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"count": 0}, "results": None},
        {"metadata": {"count": 3}, "results": [{"tempoWorklogId": 1}, {"tempoWorklogId": 2}]},
        {"metadata": {"count": 1}, "results": [{"id": 1}]},
        {"metadata": {"count": 1}, "results": [{"tempoWorklogId": True}]},
        {"metadata": {"count": 1}, "results": ["4001"]},
    ],
    ids=["no results", "truncated", "no id", "boolean id", "not an object"],
)
def test_a_malformed_or_truncated_page_makes_the_listing_raise(body):
    with pytest.raises(MalformedResponseError):
        TempoClient(ScriptedTempo(body)).worklog_ids(0.0)


def test_a_30_day_reconciliation_of_the_demo_company_is_one_call(monkeypatch):
    company = Company.generate(seed=7, messages=3000, days=5)  # the demo's company
    with Sandbox(company=company) as sandbox:
        run = reconcile_run(sandbox, monkeypatch)  # listing pages of Tempo's largest, 5000
        (listing,) = SOURCE.reconcile.list_ids(run)
        served = {route: calls for route, calls in sandbox.knobs.calls.items() if calls}
    assert len(listing.doc_ids) == len(TempoWorklogs.of(company).ordered()) == 600
    assert served == {"worklogs": 1}
