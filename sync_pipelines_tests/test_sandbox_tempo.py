"""The Tempo emulator speaks Tempo Cloud's v4 worklog shapes."""

import datetime as dt

import httpx
import pytest

from sync_pipelines.sandbox.company import Company
from sync_pipelines.sandbox.jira_data import ARCHIVED_PROJECT
from sync_pipelines.sandbox.server import Sandbox
from sync_pipelines.sandbox.tempo_data import FORMER_EMPLOYEE, SANDBOX_TEMPO_TOKEN

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
    assert all(w.updated <= dt.datetime.now(dt.UTC).timestamp() - 60 for w in worklogs)


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
