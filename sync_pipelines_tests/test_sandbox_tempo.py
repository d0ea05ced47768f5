"""The Tempo emulator speaks Tempo Cloud's v4 worklog shapes."""

import datetime as dt

import httpx
import pytest

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import (
    ARCHIVED_PROJECT,
    SANDBOX_JIRA_EMAIL,
    SANDBOX_JIRA_TOKEN,
)
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.tempo.data import FORMER_EMPLOYEE, SANDBOX_TEMPO_TOKEN, TempoWorklogs

AUTH = {"Authorization": f"Bearer {SANDBOX_TEMPO_TOKEN}"}


@pytest.fixture(scope="module")
def emulators():
    with Sandbox(company=Company.generate(seed=11, messages=900, days=4)) as sb:
        yield sb


def get(emulators, url=None, **params):
    # params=None keeps the query of a next link (an empty dict would drop it)
    return httpx.get(
        url or f"{emulators.urls['tempo']}/4/worklogs", params=params or None, headers=AUTH
    )


def test_pages_follow_absolute_next_links_to_the_end(emulators):
    store = emulators.tempo.store
    ids, url, params, pages = [], None, {"limit": 40}, 0
    while True:
        body = get(emulators, url, **params).json()
        pages += 1
        assert body["metadata"]["count"] == len(body["results"]) <= 40
        ids += [w["tempoWorklogId"] for w in body["results"]]
        url, params = body["metadata"].get("next"), {}
        if url is None:
            break
        assert url.startswith(emulators.urls["tempo"] + "/4/worklogs?")
    assert ids == sorted(store.worklogs) and len(ids) >= 180 and pages == -(-len(ids) // 40)


def test_worklog_shape(emulators):
    worklog = get(emulators, limit=1).json()["results"][0]
    truth = emulators.tempo.store.ordered()[0]
    assert worklog["tempoWorklogId"] == truth.id
    assert worklog["issue"] == {
        "self": f"https://acme-sandbox.atlassian.net/rest/api/2/issue/{truth.issue.id}",
        "id": int(truth.issue.id),
    }
    assert worklog["author"]["accountId"] == truth.author
    assert worklog["timeSpentSeconds"] == truth.seconds
    assert worklog["startDate"] == truth.start_date and worklog["description"] == truth.description
    stamp = dt.datetime.fromtimestamp(truth.updated, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert worklog["updatedAt"] == stamp
    assert {"createdAt", "billableSeconds", "startTime", "attributes", "self"} <= set(worklog)


def test_data_mixes_keys_ids_inactive_projects_and_former_staff(emulators):
    worklogs = emulators.tempo.store.ordered()
    with_key = [w for w in worklogs if w.key_in_description]
    assert 0.3 < len(with_key) / len(worklogs) < 0.8
    assert any(w.issue.project == ARCHIVED_PROJECT for w in worklogs)
    assert any(w.author == FORMER_EMPLOYEE for w in worklogs)
    assert all(w.updated <= clock.now_epoch() - 60 for w in worklogs)


def test_some_descriptions_name_another_live_issue(emulators):
    live = {p.key for p in emulators.jira.site.projects}
    worklogs = emulators.tempo.store.ordered()
    naming_other = [
        w
        for w in worklogs
        if any(k != w.issue.key and k.split("-")[0] in live for k in w.keys_in_description)
    ]
    assert 0 < len(naming_other) < len(worklogs) / 5
    # the other key sometimes comes first, sometimes alone, sometimes on an archived issue
    assert any(not w.key_in_description for w in naming_other)
    assert any(
        w.keys_in_description[0] != w.issue.key for w in naming_other if w.key_in_description
    )
    assert any(w.issue.project == ARCHIVED_PROJECT for w in naming_other)


def test_key_in_description_is_a_whole_key():
    store = TempoWorklogs.of(Company.generate(seed=11, messages=900, days=4))
    own = next(w for w in store.ordered() if not w.keys_in_description)
    store.edit_worklog(own.id, description=f"see {own.issue.key}0 and X{own.issue.key}")
    assert not own.key_in_description
    store.edit_worklog(own.id, description=f"({own.issue.key}), see UTF-8")
    assert own.key_in_description and own.keys_in_description == [own.issue.key, "UTF-8"]


def test_log_work_adds_a_worklog_served_now(sandbox):
    store = sandbox.tempo.store
    issue = store.ordered()[0].issue
    worklog = store.log_work(issue, FORMER_EMPLOYEE, 1800, "Late entry")
    assert worklog.id == max(store.worklogs) and worklog.updated <= clock.now_epoch()
    stamp = dt.datetime.fromtimestamp(worklog.updated, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    served = get(sandbox, limit=5000, updatedFrom=stamp).json()["results"]
    assert [w["description"] for w in served if w["tempoWorklogId"] == worklog.id] == ["Late entry"]


def test_a_jira_may_not_serve_user_bulk(emulators):
    url = f"{emulators.urls['jira']}/rest/api/3/user/bulk"
    auth = (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    account = next(iter(emulators.jira.site.users))
    assert httpx.get(url, params={"accountId": account}, auth=auth).status_code == 200
    emulators.jira.unserved.add("user/bulk")
    try:
        response = httpx.get(url, params={"accountId": account}, auth=auth)
    finally:
        emulators.jira.unserved.discard("user/bulk")
    assert response.status_code == 404
    assert response.json()["errorMessages"][0].startswith("null for uri")


def test_updated_from_and_work_date_filters(emulators):
    store = emulators.tempo.store
    middle = sorted(w.updated for w in store.ordered())[len(store.worklogs) // 2]
    stamp = dt.datetime.fromtimestamp(middle, dt.UTC)
    since = get(emulators, limit=5000, updatedFrom=stamp.strftime("%Y-%m-%dT%H:%M:%SZ")).json()
    assert {w["tempoWorklogId"] for w in since["results"]} == {
        w.id for w in store.ordered() if w.updated >= middle
    }
    day = stamp.date().isoformat()
    by_day = get(emulators, limit=5000, updatedFrom=day).json()
    assert len(by_day["results"]) >= len(since["results"])
    dated = get(emulators, limit=5000, **{"from": day, "to": day}).json()
    assert dated["results"] and all(w["startDate"] == day for w in dated["results"])


@pytest.mark.parametrize(
    "params", [{"limit": 5001}, {"updatedFrom": "yesterday"}, {"from": "2026/01/01"}]
)
def test_bad_parameters_are_400s_in_tempos_error_shape(emulators, params):
    response = get(emulators, **params)
    assert response.status_code == 400
    assert list(response.json()) == ["errors"] and response.json()["errors"][0]["message"]


def test_bad_token_and_rate_limit(emulators):
    denied = httpx.get(
        f"{emulators.urls['tempo']}/4/worklogs", headers={"Authorization": "Bearer nope"}
    )
    assert denied.status_code == 401 and "errors" in denied.json()
    emulators.knobs.inject("worklogs", "429", retry_after=2)
    limited = get(emulators)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"


def test_edit_bumps_updated_at(emulators):
    worklog = emulators.tempo.store.ordered()[3]
    before = worklog.updated
    emulators.tempo.edit_worklog(worklog.id, description="Pairing on SUBS-1", seconds=1800)
    assert worklog.updated > before and worklog.seconds == 1800


def test_self_next_and_previous_links_keep_the_filters(emulators):
    base = f"{emulators.urls['tempo']}/4/worklogs"
    body = get(emulators, offset=50, limit=20, updatedFrom="2020-01-01").json()
    assert body["self"] == f"{base}?offset=50&limit=20&updatedFrom=2020-01-01"
    assert body["metadata"] == {
        "count": 20,
        "offset": 50,
        "limit": 20,
        "next": f"{base}?updatedFrom=2020-01-01&offset=70&limit=20",
        "previous": f"{base}?updatedFrom=2020-01-01&offset=30&limit=20",
    }
    served = [w["tempoWorklogId"] for w in body["results"]]
    assert served == sorted(emulators.tempo.store.worklogs)[50:70]
    first = get(emulators).json()
    assert first["self"] == base and "previous" not in first["metadata"]
    assert first["metadata"]["limit"] == 50  # Tempo's default page size


def test_errors_come_in_the_order_tempo_checks_them(emulators):
    both = get(emulators, offset="x", limit=0, updatedFrom="soon")
    assert both.json() == {"errors": [{"message": "'offset' must be an integer"}]}
    limit = get(emulators, limit=0, **{"from": "soon"}).json()["errors"][0]["message"]
    assert limit == "'limit' must be between 1 and 5000"
    denied = httpx.get(f"{emulators.urls['tempo']}/4/worklogs", params={"limit": 0})
    assert denied.status_code == 401  # the token is checked before any parameter
