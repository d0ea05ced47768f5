"""The failure-alert sensor: reads finished runs and the sources' freshness states, posts to
Slack.

It never requests or re-launches runs (a sensor that re-requests failing partitions is how
alert storms start). Each tick handles the runs that finished since the cursor, in finish
order, then the freshness state Dagster's freshness evaluation (the daemon) last recorded per
source, and stops early, keeping its place, when Slack refuses a post or the per-tick budget is
spent; the next tick continues from there without repeating what was already sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sync_pipelines import clock
from sync_pipelines.alerts.messages import alert_text, recovery_text
from sync_pipelines.alerts.resource import TOKEN_ENV, AlertDeliveryError, AlertsResource
from sync_pipelines.alerts.signals import (
    RetryFate,
    RunReport,
    Signal,
    finished_runs,
    freshness_signals,
    latest_storage_id,
    retry_fate,
)
from sync_pipelines.alerts.state import AlertState, Problem, Waiting
from sync_pipelines.index.asset import VECTOR_INDEX
from sync_pipelines.sources.registry import declaration

MAX_RUNS_PER_TICK = 100
MAX_POSTS_PER_TICK = 20


class _Courier:
    """Renders and posts messages, at most `budget` per tick."""

    def __init__(self, alerts: AlertsResource, budget: int):
        self.alerts = alerts
        self.budget = budget
        self.sent = 0

    def __call__(self, signal: Signal, problem: Problem | None) -> None:
        if self.sent >= self.budget:
            raise AlertDeliveryError(f"{self.sent} alerts sent this tick, the rest come next tick")
        if problem is None:
            self.alerts.post(alert_text(signal, self.alerts))
        else:
            self.alerts.post(recovery_text(signal, problem, self.alerts))
        self.sent += 1


def _tick(
    context: SensorEvaluationContext,
    state: AlertState,
    courier: _Courier,
    watched: frozenset[str],
    freshness_limits: Mapping[str, int],
) -> None:
    instance = context.instance
    retries_enabled = instance.run_retries_enabled
    now = clock.now_epoch()
    for run_id, waiting in list(state.waiting.items()):
        record = instance.get_run_record_by_id(run_id)
        fate = (
            retry_fate(record.dagster_run, waiting.at, now, retries_enabled)
            if record
            else RetryFate.RETRIED
        )
        if fate is RetryFate.WAIT:
            continue
        if fate is RetryFate.FINAL:
            report = RunReport(instance, record.dagster_run, ok=False, at=waiting.at)
            for signal in report.run_signals(watched):
                if signal.key in waiting.keys:
                    state.feed(signal, courier)
        del state.waiting[run_id]

    for finished in finished_runs(instance, state.after, MAX_RUNS_PER_TICK):
        run = instance.get_run_by_id(finished.run_id)
        if run is not None:  # deleted since
            report = RunReport(instance, run, ok=finished.ok, at=finished.at)
            signals = report.run_signals(watched)
            fate = (
                RetryFate.FINAL
                if finished.ok
                else retry_fate(run, finished.at, now, retries_enabled)
            )
            failed = [s.key for s in signals if not s.ok]
            if fate is RetryFate.WAIT and failed:
                state.waiting[run.run_id] = Waiting(at=finished.at, keys=failed)
            for signal in signals:
                if signal.ok or fate is RetryFate.FINAL:
                    state.feed(signal, courier)
        state.after = finished.storage_id

    for signal in freshness_signals(instance, freshness_limits, now):
        state.feed(signal, courier)


def build_alerts_sensor(
    source_names: Sequence[str],
    index_name: str = VECTOR_INDEX,
    name: str = "failure_alerts",
    minimum_interval_seconds: int = 30,
    other_assets: Sequence[str] = (),
) -> SensorDefinition:
    """A sensor alerting on failed runs of `source_names`, `index_name` and `other_assets`
    (the reconciliations) and on sources failing their freshness policy, once per failing
    subject, with one recovery message."""
    watched = frozenset([*source_names, index_name, *other_assets])
    freshness_limits = {name: declaration(name).freshness_minutes for name in source_names}

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Posts to Slack when a source/connection or vector_index run fails after its retries "
            "or a source fails its freshness policy (state FAIL, evaluated by the daemon): one "
            "alert until it succeeds or is fresh again, then one recovery. "
            f"Quiet unless {TOKEN_ENV} is set. Never launches runs."
        ),
    )
    def failure_alerts(context: SensorEvaluationContext, alerts: AlertsResource):
        if not alerts.configured:
            context.log.info(f"Alerting is off: no Slack token configured (set {TOKEN_ENV}).")
            return SkipReason(f"no Slack alert token configured (set {TOKEN_ENV})")
        state = AlertState.from_cursor(context.cursor)
        if state.after is None:
            state.after = latest_storage_id(context.instance)
            return SensorResult(
                skip_reason="started: alerting on runs that finish from now on",
                cursor=state.to_cursor(),
            )
        courier = _Courier(alerts, MAX_POSTS_PER_TICK)
        try:
            _tick(context, state, courier, watched, freshness_limits)
        except AlertDeliveryError as exc:
            context.log.warning(f"{exc}; {courier.sent} sent, retrying the rest next tick")
            return SensorResult(skip_reason=str(exc), cursor=state.to_cursor())
        except Exception as exc:  # keep what was sent: a lost cursor would repeat those alerts
            context.log.exception("alert sensor tick failed; progress so far kept")
            return SensorResult(
                skip_reason=alerts.scrub(f"tick failed, progress kept: {exc!r}"),
                cursor=state.to_cursor(),
            )
        if courier.sent:
            return SensorResult(
                skip_reason=f"posted {courier.sent} message(s) to {alerts.channel}",
                cursor=state.to_cursor(),
            )
        return SensorResult(skip_reason="nothing new to report", cursor=state.to_cursor())

    return failure_alerts
