"""Gmail through Dagster: the declaration, the historyId kept in run storage between a day's
runs (a first run lists the day, the next one reads only the history), and a deletion seen
in the history leaving the index."""

from dagster import materialize
from sync_pipelines_sandbox.contract import contract_for

from sync_pipelines import clock
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.sources.figures import CURSOR_KEY
from sync_pipelines.sources.registry import declarations
from sync_pipelines_tests.conftest import day

SCOPE = "gmail:acme:"


def use_gmail(harness, monkeypatch):
    contract = contract_for("gmail")
    monkeypatch.setenv("TEST_GMAIL_SECRET", contract.good_secret)
    for name, value in contract.extra_env.items():
        monkeypatch.setenv(name, value)
    harness.registry.write_text(
        "connections:\n" + contract.registry_entry(harness.sandbox, "acme", "TEST_GMAIL_SECRET")
    )
    harness.extra_resources = contract.resources(harness.sandbox)
    return contract


def test_the_declaration():
    (gmail,) = [d for d in declarations() if d.name == "gmail"]
    assert gmail.cron == "9,24,39,54 * * * *" and gmail.freshness_minutes == 30
    assert gmail.reconcile.cron == "45 3 * * *" and gmail.reconcile.days == 30
    assert gmail.resource.DEFAULT_BASE_URL == "https://gmail.googleapis.com"
    assert gmail.first_credential_env == "GMAIL_REFRESH_TOKEN"


def test_a_days_runs_keep_the_history_id_and_deletions_leave_the_index(harness, monkeypatch):
    contract = use_gmail(harness, monkeypatch)
    data = harness.sandbox.gmail.data
    first = harness.sync(contract.asset, [day(0)])
    meta = harness.metadata(first, "gmail")
    assert meta["mode"] == "full" and meta["run_messages_listed"] > 0
    cursor = meta[CURSOR_KEY]
    assert cursor == str(data.mailbox(data.owner).history_id)
    docs = harness.documents(first, "gmail")
    assert docs

    upstream = [contract.asset]
    index = build_vector_index(upstream)

    def reindex():
        result = materialize(
            [index, contract.asset.to_source_asset()],
            selection=["vector_index"],
            instance=harness.instance,
            resources=harness.resources(),
        )
        return harness.metadata(result, "vector_index")

    reindex()
    gone = docs[0].doc_id.removeprefix(SCOPE)
    data.delete_message(data.owner, gone)
    new = data.add_message(data.owner, internal_ms=int(clock.now_epoch() * 1000) - 1000)
    listed = harness.sandbox.knobs.calls["messages.list"]

    second = harness.sync(contract.asset, [day(0)])
    meta = harness.metadata(second, "gmail")
    assert meta["mode"] == "incremental" and meta["run_history_records"] == 2
    assert harness.sandbox.knobs.calls["messages.list"] == listed  # history only
    assert [d.doc_id for d in harness.documents(second, "gmail")] == [SCOPE + new.id]
    assert int(meta[CURSOR_KEY]) > int(cursor)
    assert meta["tombstones_written"] == 1
    assert reindex()["documents_deleted"] == 1
