"""The outside fault-injection review's method, fast subset (the long one: reliability/).

A seeded fault proxy (5xx, 429, malformed bodies, resets, hangs, writes that landed behind a
502, requests delivered twice) sits in front of the Slack, OpenAI and Pinecone emulators while
a day of Slack is synced and indexed, failed runs re-run as a user would. The final Pinecone
namespace must equal an undisturbed run's exactly, an unchanged re-run must embed nothing and
search must never hand a private chunk to a non-member. Then a sync with distinctive fake
credentials (a good one, a revoked one, one pasted inline in the registry, bad embedder and
store keys) must leave none of them in DAGSTER_HOME, the data dir or the posted alerts.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import uuid
from collections import Counter

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import build_sensor_context
from slack_sdk import WebClient

from sync_pipelines.alerts import AlertsResource, build_alerts_sensor
from sync_pipelines_sandbox import __main__ as sandbox_cli
from sync_pipelines_sandbox.fault_proxy import FaultPlan, FaultProxy
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.reliability.checks import private_chunk_leaks
from sync_pipelines_tests.reliability.deployment import Credentials, Deployment, Endpoints
from sync_pipelines_tests.reliability.scenarios import build_reference, run_under_faults
from sync_pipelines_tests.reliability.secret_scan import canaries, scan_files, scan_texts

pytestmark = pytest.mark.integration

# 10 % of requests, every kind equally likely. The Slack client times out after 1 s, so a
# 1.5 s hang is a real client timeout there; the embedder's and the store's timeouts (60 s and
# 30 s) are not configurable, so for them a hang is a connection dropped after 1.5 s.
PLAN = FaultPlan(rate=0.1, hang_s=1.5)
SLACK_TIMEOUT_S = 1
SLACK_TOKEN_ENV = "RELIABILITY_SLACK_TOKEN"


# kind -> (what the client sees, messages the emulator posted)
PROXY_KINDS = {
    "500": (500, 0),
    "502": (502, 0),
    "503": (503, 0),
    "504": (504, 0),
    "429": (429, 0),
    "html": ("html", 0),
    "truncated": ("not json", 1),
    "reset": (httpx.TransportError, 0),
    "hang": (httpx.TransportError, 0),
    "landed_502": (502, 1),  # the write landed, the client saw an error
    "twice": ("ok", 2),  # delivered twice: a non-idempotent write happened twice
}


@pytest.mark.parametrize("kind", PROXY_KINDS)
def test_fault_proxy_fires_each_kind_as_described(sandbox, kind):
    seen, landed = PROXY_KINDS[kind]
    plan = FaultPlan(rate=1.0, weights={kind: 1.0}, retry_after_s=3, hang_s=1.0)
    with FaultProxy(sandbox.urls["slack"], plan, seed=kind) as proxy:
        url = proxy.url_for(sandbox.urls["slack"]) + "chat.postMessage"
        post = functools.partial(
            httpx.post,
            url,
            headers={"Authorization": f"Bearer {SANDBOX_SLACK_TOKEN}"},
            data={"channel": "#alerts", "text": f"through the proxy: {kind}"},
            timeout=0.5,  # shorter than the hang: the client gives up first
        )
        if isinstance(seen, type):
            with pytest.raises(seen):
                post()
        else:
            response = post()
            if seen == "html":
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/html")
            elif seen == "not json":
                assert response.status_code == 200
                with pytest.raises(json.JSONDecodeError):
                    response.json()
            elif seen == "ok":
                assert response.json()["ok"] is True
            else:
                assert response.status_code == seen
            if seen == 429:
                assert response.headers["retry-after"] in {"1", "2", "3"}
        assert proxy.fired == {kind: 1} and proxy.requests == 1
    assert len(sandbox.slack.posted) == landed


def test_fault_proxy_passes_through_and_is_reproducible_by_seed(sandbox):
    def kinds_fired(seed: int) -> Counter:
        plan = FaultPlan(rate=0.5, hang_s=0.1)
        with FaultProxy(sandbox.urls["slack"], plan, seed=seed) as proxy:
            with httpx.Client(timeout=5) as keep_alive:
                for _ in range(30):
                    try:
                        keep_alive.post(proxy.url_for(sandbox.urls["slack"]) + "api.test")
                    except httpx.TransportError:
                        pass
            return proxy.fired

    assert kinds_fired(5) == kinds_fired(5) != kinds_fired(6)
    with FaultProxy(sandbox.urls["slack"], FaultPlan(rate=0.0)) as proxy:
        client = WebClient(
            token=SANDBOX_SLACK_TOKEN, base_url=proxy.url_for(sandbox.urls["slack"])
        )
        assert client.auth_test()["ok"] and proxy.fired == Counter()


@pytest.mark.parametrize(
    "plan, message",
    [
        ({"rate": 1.5}, "fault rate must be between 0 and 1"),
        ({"weights": {"teapot": 1.0}}, "unknown fault kinds ['teapot']"),
        ({"hang_s": 3600}, "hang_s must be in"),
        ({"retry_after_s": 0}, "retry_after_s must be a whole number"),
    ],
)
def test_fault_plan_rejects_bad_settings_by_name(plan, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        FaultPlan(**plan)


def test_sandbox_cli_takes_a_fault_rate_and_seed(capsys):
    args = sandbox_cli.parser().parse_args(["--faults", "0.1", "--fault-seed", "4"])
    assert (args.faults, args.fault_seed) == (0.1, 4)
    with pytest.raises(SystemExit):
        sandbox_cli.parser().parse_args(["--faults", "10"])
    assert "expected a rate between 0 and 1, got 10" in capsys.readouterr().err


def test_secret_scan_finds_a_secret_in_every_kind_of_store(tmp_path):
    secret = f"xoxb-canary-{uuid.uuid4().hex}"
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute("CREATE TABLE event_logs (event TEXT)")
        db.execute("INSERT INTO event_logs VALUES (?)", (f"error: token {secret} rejected",))
    logs = tmp_path / "storage" / "run" / "compute_logs"
    logs.mkdir(parents=True)
    (logs / "step.err").write_text(f"Authorization: Bearer {secret}\n")
    pq.write_table(pa.table({"text": [f"pasted {secret}"] * 100}), tmp_path / "docs.parquet")
    (tmp_path / "clean.txt").write_text("nothing to see")

    result = scan_files([tmp_path], {"token": secret})
    assert {kind for kind, _, _ in result.hits} == {"sqlite", "compute_log", "parquet"}
    assert result.read == {"sqlite": 1, "compute_log": 1, "parquet": 1, "other": 1}


@pytest.mark.parametrize("seed", [1, 2])
def test_faults_leave_exactly_the_reference_in_pinecone(
    sandbox, company, tmp_path, monkeypatch, seed
):
    monkeypatch.setenv(SLACK_TOKEN_ENV, SANDBOX_SLACK_TOKEN)
    credentials = Credentials(
        SLACK_TOKEN_ENV, SANDBOX_SLACK_TOKEN, SANDBOX_OPENAI_KEY, SANDBOX_PINECONE_KEY
    )
    days = [day(-1)]
    _, reference_inputs = build_reference(sandbox, tmp_path, credentials, days)
    deployment, outcome = run_under_faults(
        sandbox, tmp_path, credentials, days, seed, PLAN, slack_timeout_s=SLACK_TIMEOUT_S
    )
    print(outcome, f"reference embedding inputs: {reference_inputs}")

    assert sum(outcome.fired.values()) > 0, "the proxy fired no fault: nothing was tested"
    assert outcome.comparison.reference > 0
    assert outcome.comparison.exact, outcome.comparison
    assert outcome.rerun_chunks_embedded == 0 and outcome.rerun_inputs == 0
    acl = private_chunk_leaks(sandbox, deployment, company)
    assert acl.identities == 7 and acl.queries > 0
    assert acl.member_hits == acl.queries, "members must find their own private chunk"
    assert acl.leaked == 0, acl


def test_no_secret_reaches_dagster_home_data_dir_or_alerts(sandbox, tmp_path, monkeypatch):
    secrets = canaries()
    sandbox.slack.set_token(secrets["slack token"])
    sandbox.openai.valid_keys = {secrets["openai key"]}
    sandbox.pinecone.valid_keys = {secrets["pinecone key"]}
    monkeypatch.setenv(SLACK_TOKEN_ENV, secrets["slack token"])
    monkeypatch.setenv("RELIABILITY_REVOKED_TOKEN", secrets["revoked slack token"])
    credentials = Credentials(
        SLACK_TOKEN_ENV, secrets["slack token"], secrets["openai key"], secrets["pinecone key"]
    )
    slack_url = sandbox.urls["slack"]
    deployment = Deployment(
        tmp_path,
        Endpoints.of(sandbox.urls),
        credentials,
        "secrets",
        extra_registry=(
            f"  - id: revoked\n    source: slack\n    base_url: {slack_url}\n"
            "    credentials: {token: RELIABILITY_REVOKED_TOKEN}\n"
            f"  - id: pasted\n    source: slack\n    base_url: {slack_url}\n"
            f"    credentials: {{token: {secrets['slack token pasted in the registry']}}}\n"
        ),
        connection_ids=("acme", "revoked", "pasted"),
    )
    alerts = AlertsResource(
        slack_token=secrets["slack token"],
        slack_base_url=slack_url,
        webserver_base_url="http://dagster.example:3000",
    )
    sensor = build_alerts_sensor(["slack"])
    cursor = sensor.evaluate_tick(
        build_sensor_context(instance=deployment.instance, resources={"alerts": alerts})
    ).cursor  # the first tick only marks where alerts start

    assert deployment.sync_slack(day(-1))
    assert not deployment.sync_slack(day(-1), connection="revoked")
    assert not deployment.sync_slack(day(-1), connection="pasted")
    for bad in ("bad pinecone key", "bad openai key"):  # the store is checked first
        field = bad.removeprefix("bad ").replace(" ", "_")
        deployment.credentials = Credentials(**{**vars(credentials), field: secrets[bad]})
        assert not deployment.index()
    deployment.credentials = credentials
    assert deployment.index()
    sensor.evaluate_tick(
        build_sensor_context(
            instance=deployment.instance, cursor=cursor, resources={"alerts": alerts}
        )
    )

    posted = {f"alert {n}": repr(message) for n, message in enumerate(sandbox.slack.posted)}
    controls = {
        "control: revoked connection named": "'revoked'",  # in the failure's error and alert
        "control: a document id": "slack:acme:",
    }
    stored = {deployment.namespace: repr(sandbox.pinecone.vectors(deployment.namespace))}
    needles = {**secrets, **controls}
    result = (
        scan_files([deployment.home, deployment.data], needles)
        .merge(scan_texts("alert", posted, needles))
        .merge(scan_texts("pinecone", stored, needles))
    )

    # The scan read every kind of store, and finds what is known to be there.
    assert result.read["sqlite"] and result.read["compute_log"] and result.read["parquet"]
    assert result.read["alert"] >= 2, "the revoked and the pasted connection each alert"
    assert result.found("control: revoked connection named", "sqlite")
    assert result.found("control: revoked connection named", "compute_log")
    assert result.found("control: revoked connection named", "alert")
    assert result.found("control: a document id", "parquet")
    assert result.found("control: a document id", "pinecone")
    leaks = [(kind, where, label) for kind, where, label in result.hits if label in secrets]
    assert leaks == [], f"{len(leaks)} secrets found (kind, file, which secret): {leaks[:10]}"
