"""CallRail's daily cap: every request of an account counts in a ledger all its runs share; at
the cap a request waits when a slot frees soon, else the run fails at once saying when the
budget frees, without sending it. The clock is the suite's pinned one (time-machine)."""

from datetime import timedelta

import httpx
import pytest
import time_machine

from sync_pipelines import clock
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourcePermanentError
from sync_pipelines.http import HttpSourceClient
from sync_pipelines.sources.callrail.client import CallRailClient, CallRailResource
from sync_pipelines.sources.callrail.quota import BudgetedTransport, DailyBudget, DailyCapReached


def test_two_runs_share_the_budget_and_the_cap_frees_24_hours_later(tmp_path):
    ledger = tmp_path / "daily_budget_ACC1.json"
    with time_machine.travel(clock.now(), tick=False) as traveller:
        start = clock.now()
        first, second = DailyBudget(ledger, limit=5), DailyBudget(ledger, limit=5)
        for _ in range(3):
            first.take()
        traveller.shift(timedelta(hours=5))
        second.take(), second.take()
        with pytest.raises(DailyCapReached) as failure:
            first.take()
        frees = start.replace(second=0, microsecond=0) + timedelta(days=1, minutes=1)
        assert frees.isoformat(timespec="minutes") in str(failure.value)
        assert "5 requests in the last 24 hours" in str(failure.value)
        assert isinstance(failure.value, SourcePermanentError)  # no Dagster retry in minutes
        assert first.used() == 5
        traveller.shift(timedelta(hours=19, minutes=2))  # the first 3 left the window
        assert second.used() == 2
        first.take()
        assert first.used() == 3


def test_a_slot_freeing_within_the_wait_is_waited_for(tmp_path):
    with time_machine.travel(clock.now(), tick=False) as traveller:
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            traveller.shift(seconds)

        budget = DailyBudget(tmp_path / "b.json", limit=2, max_wait_s=300, sleep=sleep)
        budget.take()
        traveller.shift(timedelta(hours=23, minutes=58))
        budget.take()
        waited = budget.take()  # the first request's minute leaves the window in < 3 min
        assert waits and waited == sum(waits) <= 180
        assert budget.used() == 2


def _client(budget: DailyBudget, answers: list[httpx.Request]) -> CallRailClient:
    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(request)
        page = len(answers)
        return httpx.Response(200, json={"page": page, "total_pages": 3, "per_page": 1,
                                         "form_submissions": [{"id": f"FRM{page}"}]})  # fmt: skip

    http = HttpSourceClient(
        source="callrail",
        connection_id="t",
        base_url="https://api.callrail.com",
        transport=BudgetedTransport(budget, httpx.MockTransport(handler)),
        backoff_s=0.01,
    )
    return CallRailClient(http, "ACC1", None, budget)


def test_at_the_cap_a_listing_stops_before_sending_and_is_not_retried(tmp_path):
    with time_machine.travel(clock.now(), tick=False):
        budget = DailyBudget(tmp_path / "b.json", limit=2, max_wait_s=60, label="callrail 't'")
        sent: list[httpx.Request] = []
        client = _client(budget, sent)
        pages = client.form_submissions(0, 1, per_page=1)
        assert [p[0]["id"] for p in (next(pages), next(pages))] == ["FRM1", "FRM2"]
        with pytest.raises(DailyCapReached, match="callrail 't'.*daily cap \\(2\\)"):
            next(pages)
        assert len(sent) == 2 and client.stats.retries == 0


def test_the_resource_budgets_each_account_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CR_KEY", "k")
    connection = Connection(
        id="a", source="callrail", credentials={"api_key": "CR_KEY"}, options={"account_id": "ACC7"}
    )
    monkeypatch.delenv("CALLRAIL_DAILY_LIMIT", raising=False)
    client = CallRailResource(budget_dir=str(tmp_path)).client_for(connection)
    assert (
        client.budget.limit == 10_000 and client.budget.path == tmp_path / "daily_budget_ACC7.json"
    )
    assert isinstance(client.http._client._transport, BudgetedTransport)
    monkeypatch.setenv("CALLRAIL_DAILY_LIMIT", "0")
    assert CallRailResource(budget_dir=str(tmp_path)).client_for(connection).budget is None
    monkeypatch.setenv("CALLRAIL_DAILY_LIMIT", "lots")
    with pytest.raises(ValueError, match="daily limit"):
        CallRailResource(budget_dir=str(tmp_path)).client_for(connection)
