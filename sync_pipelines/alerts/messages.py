"""Alert and recovery texts (Slack mrkdwn). The resource scrubs credentials before posting."""

from __future__ import annotations

from datetime import datetime, timezone

from sync_pipelines.alerts.resource import AlertsResource
from sync_pipelines.alerts.signals import Signal
from sync_pipelines.alerts.state import Problem

MAX_DETAIL_CHARS = 300


def _detail(signal: Signal, alerts: AlertsResource) -> str:
    """The signal's detail, scrubbed before it is shortened (a cut could split a secret)."""
    text = alerts.scrub(signal.detail)
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _run_link(alerts: AlertsResource, run_id: str) -> str:
    return f"<{alerts.run_url(run_id)}|run {run_id[:8]}>"


def _subject(signal: Signal) -> str:
    if signal.connection:
        return f"*{signal.asset}* connection `{signal.connection}`"
    return f"*{signal.asset}*"


def alert_text(signal: Signal, alerts: AlertsResource) -> str:
    if signal.freshness:
        return (
            f":warning: *{signal.asset}* is stale: {_detail(signal, alerts)}\n"
            f"Freshness policy: <{alerts.asset_url(signal.asset)}|open in Dagster>. "
            "One alert until it is fresh again."
        )
    retried = ""
    if signal.retries:
        retried = f" after {signal.retries} retr{'y' if signal.retries == 1 else 'ies'}"
    lines = [f":red_circle: {_subject(signal)} failed{retried}"]
    if signal.partition:
        lines.append(f"Partition: {signal.partition}")
    lines += [
        f"Error: {_detail(signal, alerts)}",
        f"Run: {_run_link(alerts, signal.run_id)}",
        "Further failures stay quiet until it succeeds again.",
    ]
    return "\n".join(lines)


def recovery_text(signal: Signal, problem: Problem, alerts: AlertsResource) -> str:
    if signal.freshness:
        return (
            f":large_green_circle: *{signal.asset}* is fresh again "
            f"(stale since {_when(problem.at)})."
        )
    partition = f" for {signal.partition}" if signal.partition else ""
    return (
        f":large_green_circle: {_subject(signal)} recovered: {_run_link(alerts, signal.run_id)} "
        f"succeeded{partition}. Failing since {_when(problem.at)} "
        f"(first failure {_run_link(alerts, problem.run_id)})."
    )
