"""The failure-alert sensor against real runs in a Dagster instance and the Slack emulator."""

from __future__ import annotations

import json
import re

import pytest
from dagster import (
    AssetKey,
    DagsterRun,
    Definitions,
    Failure,
    MaterializeResult,
    asset,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG

from sync_pipelines import clock
from sync_pipelines.alerts import AlertsResource, build_alerts_sensor, scrub_secrets
from sync_pipelines.alerts import sensor as sensor_module
from sync_pipelines.alerts import signals as signals_module
from sync_pipelines.alerts.signals import RetryFate, retry_fate
from sync_pipelines.partitions import connections_partitions_name, partition_key, source_partitions
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import BAD_TOKEN_ENV, GOOD_TOKEN_ENV, day
from sync_pipelines_tests.freshness_daemon import (
    freshness_daemon,
    freshness_state,
    store_materialization,
)

pytestmark = pytest.mark.integration

SENSOR = build_alerts_sensor(["slack", "jira"])
UI = "http://dagster.example:3000"


class Ticker:
    """Evaluates the sensor the way the daemon does, carrying the cursor between ticks."""

    def __init__(self, harness, **alerts_options):
        self.harness = harness
        self.cursor = None
        self.options = {
            "slack_token": SANDBOX_SLACK_TOKEN,
            "slack_base_url": harness.sandbox.urls["slack"],
            "webserver_base_url": UI,
            **alerts_options,
        }

    @property
    def posted(self) -> list[dict]:
        return self.harness.sandbox.slack.posted

    def __call__(self, **alerts_options):
        context = build_sensor_context(
            instance=self.harness.instance,
            cursor=self.cursor,
            resources={"alerts": AlertsResource(**{**self.options, **alerts_options})},
        )
        data = SENSOR.evaluate_tick(context)
        assert not data.run_requests  # alerts never launch anything
        self.cursor = data.cursor if data.cursor is not None else self.cursor
        return data


@pytest.fixture
def tick(harness) -> Ticker:
    ticker = Ticker(harness)
    assert "started" in ticker().skip_message  # the first tick only marks where it starts
    return ticker


def fail_slack(harness, days=None, connection="broken", tags=None):
    if tags is None:
        result = harness.sync_slack(days or [day(-1)], connection=connection, raise_on_error=False)
    else:
        from sync_pipelines.definitions import slack_asset

        result = materialize(
            [slack_asset],
            instance=harness.instance,
            resources=harness.resources(),
            partition_key=partition_key(day(-1), connection),
            tags=tags,
            raise_on_error=False,
        )
    return result


def fix_broken_token(monkeypatch):
    monkeypatch.setenv(BAD_TOKEN_ENV, SANDBOX_SLACK_TOKEN)


def test_failing_run_alerts_once_with_the_details(harness, tick):
    result = fail_slack(harness)
    assert not result.success
    tick()
    (message,) = tick.posted
    text = message["text"]
    assert message["channel_name"] == "alerts"
    assert "*slack* connection `broken` failed" in text
    assert f"Partition: {day(-1)}" in text
    assert "Error: Failure: slack connection 'broken'" in text and "invalid_auth" in text
    assert f"{UI}/runs/{result.run_id}" in text
    assert "Stack" not in text and "\n  File" not in text

    for _ in range(10):
        tick()
    for _ in range(3):
        fail_slack(harness)
        tick()
    assert len(tick.posted) == 1


def test_success_after_failure_posts_one_recovery(harness, tick, monkeypatch):
    first = fail_slack(harness)
    fail_slack(harness)
    tick()
    fix_broken_token(monkeypatch)
    ok = harness.sync_slack([day(-1)], connection="broken")
    tick()
    harness.sync_slack([day(0)], connection="broken")
    tick()
    assert len(tick.posted) == 2
    recovery = tick.posted[1]["text"]
    assert "*slack* connection `broken` recovered" in recovery
    assert f"{UI}/runs/{ok.run_id}" in recovery and f"{UI}/runs/{first.run_id}" in recovery

    monkeypatch.setenv(BAD_TOKEN_ENV, "xoxb-revoked-again")
    fail_slack(harness)
    tick()
    assert len(tick.posted) == 3  # a new failure streak is a new alert
    assert "failed" in tick.posted[2]["text"]


def test_successes_of_healthy_connections_stay_quiet(harness, tick):
    harness.sync_slack([day(-1)], connection="acme")
    harness.sync_slack([day(-2), day(-1)], connection="acme")
    tick()
    assert tick.posted == []


def test_failure_that_will_retry_is_silent_when_the_retry_succeeds(harness, tick, monkeypatch):
    parent = fail_slack(harness, tags={WILL_RETRY_TAG: "true"})
    tick()
    tick()
    assert tick.posted == []
    fix_broken_token(monkeypatch)
    retry = fail_slack(
        harness,
        tags={"dagster/parent_run_id": parent.run_id, "dagster/retry_number": "1"},
    )
    assert retry.success
    harness.instance.add_run_tags(parent.run_id, {AUTO_RETRY_RUN_ID_TAG: retry.run_id})
    for _ in range(3):
        tick()
    assert tick.posted == []


def test_failure_alerts_once_the_retries_are_exhausted(harness, tick):
    parent = fail_slack(harness, tags={WILL_RETRY_TAG: "true"})
    tick()
    assert tick.posted == []
    last = fail_slack(
        harness,
        tags={"dagster/parent_run_id": parent.run_id, "dagster/retry_number": "3"},
    )
    harness.instance.add_run_tags(parent.run_id, {AUTO_RETRY_RUN_ID_TAG: last.run_id})
    tick()
    tick()
    (message,) = tick.posted
    assert "failed after 3 retries" in message["text"]
    assert f"/runs/{last.run_id}" in message["text"]


def test_failure_alerts_when_dagster_declines_the_retry(harness, tick):
    run = fail_slack(harness, tags={WILL_RETRY_TAG: "true"})
    tick()
    assert tick.posted == []
    harness.instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "false"})  # as the daemon does
    tick()
    tick()
    assert len(tick.posted) == 1 and f"/runs/{run.run_id}" in tick.posted[0]["text"]


def test_two_failing_connections_alert_separately(harness, tick, monkeypatch):
    monkeypatch.setenv(GOOD_TOKEN_ENV, "xoxb-revoked-too")
    fail_slack(harness, connection="acme", days=[day(-3), day(-1)])
    fail_slack(harness, connection="broken")
    fail_slack(harness, connection="acme")
    tick()
    texts = sorted(m["text"] for m in tick.posted)
    assert len(texts) == 2
    assert "connection `acme`" in texts[0]
    assert f"Partition: {day(-3)}..{day(-1)} (3 days)" in texts[0]
    assert "connection `broken`" in texts[1] and f"Partition: {day(-1)}" in texts[1]


def test_no_token_is_quiet_and_says_why(harness, capsys):
    fail_slack(harness)
    capsys.readouterr()
    ticker = Ticker(harness, slack_token=None)
    data = ticker()
    assert "SYNC_ALERT_SLACK_TOKEN" in data.skip_message
    assert "Alerting is off: no Slack token configured" in capsys.readouterr().err
    assert ticker.cursor is None and ticker.posted == []


def test_slack_refusing_the_token_keeps_the_alert_for_the_next_tick(harness, tick):
    run = fail_slack(harness)
    data = tick(slack_token="xoxb-not-the-right-one")
    assert "invalid_auth" in data.skip_message and "xoxb-not" not in data.skip_message
    assert tick.posted == []
    harness.sandbox.knobs.inject("chat.postMessage", "500")
    assert "Slack" in tick().skip_message and tick.posted == []
    tick()
    tick()
    assert len(tick.posted) == 1 and f"/runs/{run.run_id}" in tick.posted[0]["text"]


def test_post_budget_resumes_next_tick_without_repeats(harness, tick, monkeypatch):
    monkeypatch.setattr(sensor_module, "MAX_POSTS_PER_TICK", 1)
    monkeypatch.setenv(GOOD_TOKEN_ENV, "xoxb-revoked-too")
    fail_slack(harness, connection="acme")
    fail_slack(harness, connection="broken")
    tick()
    assert len(tick.posted) == 1
    tick()
    tick()
    assert sorted("`acme`" in m["text"] for m in tick.posted) == [False, True]


SECRETS = {
    "slack": "xoxb-1234-5678-abcdefSECRET",
    "slack_user": "xoxp-99-88-userSECRET",
    "openai": "sk-proj-abcdefSECRET123",
    "pinecone": "pcsk_4abc_SECRETdef",
    "bearer": "Bearer eyJhbGciSECRET.payload",
    "basic": "Basic dXNlcjpwYXNzSECRET==",
    "api_key": "api_key=SECRETkey42",
    "token": "token=SECRETtok42",
    "url": "https://bob:SECRETpw@jira.example.com/rest",
    "env": "plain-value-SECRET-from-env",  # any shape: redacted as a known env value
}


@asset(name="jira", partitions_def=source_partitions("jira"))
def leaky_jira():
    raise Failure(
        "jira connection 'acme': request failed: " + " | ".join(SECRETS.values()) + "\nsecond line"
    )


def test_alert_text_never_contains_credentials(harness, tick, monkeypatch):
    monkeypatch.setenv("JIRA_API_TOKEN", SECRETS["env"])
    materialize(
        [leaky_jira],
        instance=harness.instance,
        partition_key=partition_key(day(-1), "acme"),
        raise_on_error=False,
    )
    tick()
    (message,) = tick.posted
    text = message["text"]
    assert "*jira* connection `acme` failed" in text and "request failed" in text
    assert "SECRET" not in text and SANDBOX_SLACK_TOKEN not in text
    assert "second line" not in text
    assert text.count("[redacted]") == len(SECRETS)


def test_scrub_leaves_ordinary_error_text_alone():
    text = "slack connection 'broken': invalid_auth; TokenError: token expired; task-12 sk-learn"
    assert scrub_secrets(text) == text


@asset(name="vector_index")
def fake_index(context):
    if context.run.tags.get("fail") == "yes":
        raise ValueError("embedding service said no\nsecond line")
    return MaterializeResult()


def test_vector_index_failure_and_recovery(harness, tick):
    for _ in range(2):
        materialize(
            [fake_index], instance=harness.instance, tags={"fail": "yes"}, raise_on_error=False
        )
        tick()
    ok = materialize([fake_index], instance=harness.instance)
    tick()
    alert, recovery = (m["text"] for m in tick.posted)
    assert alert.startswith(":red_circle: *vector_index* failed")
    assert "Error: ValueError: embedding service said no" in alert and "Partition" not in alert
    assert "*vector_index* recovered" in recovery and f"/runs/{ok.run_id}" in recovery


def report_freshness(instance, asset: str, new: str, previous: str = "UNKNOWN") -> None:
    """A freshness state change recorded exactly as the daemon records it
    (dagster/_daemon/freshness.py: a runless FreshnessStateChange event)."""
    instance._report_runless_asset_event(  # the daemon's own (private) call
        FreshnessStateChange(
            key=AssetKey(asset),
            new_state=FreshnessState(new),
            previous_state=FreshnessState(previous),
            state_change_timestamp=clock.now_epoch(),
        )
    )


def minutes_stale(text: str) -> int:
    return int(re.search(r"not updated for (\d+) min", text).group(1))


def test_real_freshness_evaluation_alerts_once_and_recovers(harness, tick):
    """Dagster's freshness daemon over the real definitions: slack unmaterialized for 31 min
    fails its 30-min policy, one alert however many ticks; a sync makes it pass, one recovery.
    jira never materialized (state UNKNOWN) stays quiet."""
    store_materialization(harness.instance, "slack", f"acme|{day(-1)}", clock.now_epoch() - 31 * 60)
    with freshness_daemon(harness.instance) as evaluate:
        evaluate()
        assert freshness_state(harness.instance, "slack") == "FAIL"
        assert freshness_state(harness.instance, "jira") == "UNKNOWN"
        for _ in range(3):
            tick()
            evaluate()
        harness.sync_slack([day(0)])
        evaluate()
        assert freshness_state(harness.instance, "slack") == "PASS"
        tick()
        tick()
    stale, fresh = (m["text"] for m in tick.posted)
    assert stale.startswith(":warning: *slack* is stale: not updated for ")
    assert minutes_stale(stale) >= 31 and "(limit 30 min)" in stale
    assert f"<{UI}/assets/slack|open in Dagster>" in stale
    assert fresh.startswith(":large_green_circle: *slack* is fresh again (stale since ")


def test_freshness_states_alert_per_stale_streak(harness, tick):
    instance = harness.instance
    store_materialization(instance, "slack", f"acme|{day(-1)}", clock.now_epoch() - 47 * 60)
    report_freshness(instance, "slack", "FAIL", previous="PASS")
    report_freshness(instance, "jira", "WARN", previous="PASS")
    tick()
    tick()
    (alert,) = (m["text"] for m in tick.posted)
    assert minutes_stale(alert) >= 47 and "(limit 30 min)" in alert and "jira" not in alert

    report_freshness(instance, "slack", "UNKNOWN", previous="FAIL")  # says nothing either way
    tick()
    report_freshness(instance, "slack", "FAIL", previous="UNKNOWN")  # same streak, no repeat
    tick()
    assert len(tick.posted) == 1
    report_freshness(instance, "slack", "PASS", previous="FAIL")
    tick()
    tick()
    assert len(tick.posted) == 2 and "*slack* is fresh again" in tick.posted[1]["text"]
    report_freshness(instance, "slack", "FAIL", previous="PASS")
    tick()
    assert len(tick.posted) == 3 and "*slack* is stale" in tick.posted[2]["text"]


def test_alert_opened_by_a_freshness_check_recovers_once(harness, tick):
    """A cursor written while alerts read freshness checks: its open alert is the same alert."""
    data = json.loads(tick.cursor)
    data["open"] = {"freshness:slack:freshness_check": {"run_id": "", "at": clock.now_epoch()}}
    tick.cursor = json.dumps(data)
    report_freshness(harness.instance, "slack", "FAIL", previous="PASS")
    tick()
    assert tick.posted == []
    report_freshness(harness.instance, "slack", "PASS", previous="FAIL")
    tick()
    (recovery,) = (m["text"] for m in tick.posted)
    assert "*slack* is fresh again" in recovery


def test_sensor_and_resource_load_in_definitions():
    Definitions.validate_loadable(
        Definitions(sensors=[SENSOR], resources={"alerts": AlertsResource()})
    )


def test_one_run_can_recover_a_source_and_fail_the_index(harness, tick, monkeypatch):
    from sync_pipelines.definitions import slack_asset

    fail_slack(harness)
    tick()
    fix_broken_token(monkeypatch)
    materialize(
        [slack_asset, fake_index],
        instance=harness.instance,
        resources=harness.resources(),
        partition_key=partition_key(day(-1), "broken"),
        tags={"fail": "yes"},
        raise_on_error=False,
    )
    tick()
    texts = [m["text"] for m in tick.posted]
    assert len(texts) == 3
    assert "*slack* connection `broken` recovered" in texts[1]
    assert "*vector_index* failed" in texts[2]


def test_real_run_retries_hold_the_alert_until_no_retry_comes(harness, monkeypatch):
    with instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 2}}) as inst:
        inst.add_dynamic_partitions(connections_partitions_name("slack"), ["broken"])
        harness.instance = inst
        ticker = Ticker(harness)
        ticker()
        run = fail_slack(harness)
        assert inst.get_run_by_id(run.run_id).tags[WILL_RETRY_TAG] == "true"  # set by Dagster
        ticker()
        assert ticker.posted == []
        monkeypatch.setattr(signals_module, "RETRY_WAIT_LIMIT_S", 0.0)  # no daemon retries here
        ticker()
        assert len(ticker.posted) == 1 and f"/runs/{run.run_id}" in ticker.posted[0]["text"]


@pytest.mark.parametrize(
    "tags, age_s, retries_enabled, fate",
    [
        ({}, 0, False, RetryFate.FINAL),
        ({}, 0, True, RetryFate.WAIT),  # Dagster tags will_retry right after the failure
        ({}, 120, True, RetryFate.FINAL),
        ({WILL_RETRY_TAG: "false"}, 0, True, RetryFate.FINAL),
        ({WILL_RETRY_TAG: "true"}, 0, True, RetryFate.WAIT),
        ({WILL_RETRY_TAG: "true"}, 3600, True, RetryFate.FINAL),  # the retry never launched
        ({WILL_RETRY_TAG: "true", AUTO_RETRY_RUN_ID_TAG: "r2"}, 0, True, RetryFate.RETRIED),
    ],
)
def test_retry_fate(tags, age_s, retries_enabled, fate):
    run = DagsterRun(job_name="j", run_id="r1", tags=tags)
    assert retry_fate(run, 1000.0, now=1000.0 + age_s, retries_enabled=retries_enabled) is fate


def test_unexpected_error_mid_tick_keeps_what_was_sent(harness, tick, monkeypatch):
    monkeypatch.setenv(GOOD_TOKEN_ENV, "xoxb-revoked-too")
    fail_slack(harness, connection="broken")
    second = fail_slack(harness, connection="acme")

    class Flaky(sensor_module.RunReport):
        def run_signals(self, watched):
            if self.run.run_id == second.run_id:
                raise RuntimeError("storage hiccup")
            return super().run_signals(watched)

    with monkeypatch.context() as patch:
        patch.setattr(sensor_module, "RunReport", Flaky)
        assert "storage hiccup" in tick().skip_message
        assert len(tick.posted) == 1
    tick()
    tick()
    assert sorted("`acme`" in m["text"] for m in tick.posted) == [False, True]
