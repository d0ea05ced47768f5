"""call_insights end to end, in real Dagster materializations: Fireflies (sandbox) →
call_insights → vector_index. Measures recall of the facts planted in customer calls, that a
second run costs no call and an edited transcript exactly one, that a deleted call leaves the
table and the index, that access is carried, that an unconfigured model keeps the cursor, and
that a failed transcript is retried by the next run without losing the others."""

from __future__ import annotations

import json

import pytest
from dagster import materialize
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY

from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.index.search import search
from sync_pipelines.insights.asset import build_call_insights
from sync_pipelines.insights.model import ChatModelResource
from sync_pipelines.insights.table import InsightsStore, InsightTable
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, use_fireflies

pytestmark = pytest.mark.integration
SCOPE = "fireflies:acme:"


class Pipeline:
    def __init__(self, harness, sandbox, tmp_path):
        self.harness, self.sandbox = harness, sandbox
        self.data = FirefliesData.of(sandbox.company)
        self.fireflies = source_asset("fireflies")
        self.insights = build_call_insights([self.fireflies])
        self.vector_index = build_vector_index([self.fireflies, self.insights])
        self.root = tmp_path / "insights"
        self.configure(model="gpt-4o-mini")

    def configure(self, **options) -> None:
        if options.get("model"):
            options.setdefault("api_key", SANDBOX_OPENAI_KEY)
            options.setdefault("base_url", self.sandbox.openai_base_url)
        self.harness.extra_resources.update(
            chat_model=ChatModelResource(max_retries=1, timeout_s=10, **options),
            insights_store=InsightsStore(root=str(self.root)),
        )

    def sync(self) -> None:
        self.harness.sync(self.fireflies, [day(o) for o in range(-3, 1)])

    def extract(self, raise_on_error=True):
        result = materialize(
            [self.insights, self.fireflies.to_source_asset()],
            selection=[self.insights],
            instance=self.harness.instance,
            resources=self.harness.resources(),
            raise_on_error=raise_on_error,
        )
        return self.harness.metadata(result, "call_insights") if result.success else result

    def index(self) -> dict:
        result = materialize(
            [self.vector_index, self.fireflies.to_source_asset(), self.insights.to_source_asset()],
            selection=[self.vector_index],
            instance=self.harness.instance,
            resources=self.harness.resources(),
        )
        return self.harness.metadata(result, "vector_index")

    def table(self):
        return InsightTable(self.root).read()

    def customer_calls(self):
        return [m for m in self.data.meetings() if self.data.planted(m)]

    def recall(self) -> tuple[int, int]:
        table = self.table()
        found = planted = 0
        for meeting in self.customer_calls():
            rows = table[table["doc_id"] == SCOPE + meeting.id]
            got = set(zip(rows["kind"], rows["value"], rows["owner"].fillna("")))
            for fact in self.data.planted(meeting):
                planted += 1
                found += (fact.kind, fact.value, fact.owner or "") in got
        return found, planted

    def search(self, text: str, as_user: str | None = None) -> set[str]:
        embedder = self.harness.embedder.build()
        store = self.harness.vector_store.build()
        hits = search(text, embedder, store, top_k=20, source="call_insights", as_user=as_user)
        return {hit.doc_id for hit in hits}


@pytest.fixture
def pipeline(harness, sandbox, monkeypatch, tmp_path) -> Pipeline:
    use_fireflies(harness, sandbox, monkeypatch)
    return Pipeline(harness, sandbox, tmp_path)


def test_fireflies_to_insights_to_the_index(pipeline, sandbox):
    pipeline.sync()
    first = pipeline.extract()
    transcripts = first["transcripts"]
    assert transcripts >= 30 and first["calls"] == transcripts and first["cache_hits"] == 0
    assert first["failures"] == first["refusals"] == 0
    assert first["tokens_in"] > 0 and first["tokens_out"] > 0
    assert first["cost_estimate_usd"] == pytest.approx(
        (first["tokens_in"] * 0.15 + first["tokens_out"] * 0.60) / 1e6, abs=1e-6
    )
    assert (first["tokens_in"], first["calls"]) == (
        sandbox.openai.chat_prompt_tokens,
        sandbox.openai.chat_requests,
    )
    found, planted = pipeline.recall()
    assert planted >= 12 and found / planted >= 0.95

    # the insight documents are indexed, in their own namespace, with the call's access
    indexed = pipeline.index()
    assert indexed["documents"] > transcripts  # the transcripts and their insights
    call = pipeline.customer_calls()[0]
    call_id = SCOPE + call.id
    fact = pipeline.data.planted(call)[0]
    guest = call.attendees[-1].email
    assert call.privacy == "participants"
    assert "call_insights:" + call_id in pipeline.search(fact.quote, as_user=guest)
    assert "call_insights:" + call_id not in pipeline.search(fact.quote)
    rows = pipeline.table()
    assert guest in rows[rows["doc_id"] == call_id].iloc[0]["access"]

    # a second run over the same transcripts costs nothing
    pipeline.sync()
    second = pipeline.extract()
    assert second["calls"] == 0 and second["cache_hits"] == second["transcripts"]
    assert sandbox.openai.chat_requests == first["calls"]

    # an edited transcript costs exactly one call
    pipeline.data.rename(call.id, "Renamed customer call")
    pipeline.sync()
    edited = pipeline.extract()
    assert edited["calls"] == 1
    rows = pipeline.table()
    assert set(rows[rows["doc_id"] == call_id]["title"]) == {"Renamed customer call"}

    # a deleted call leaves the table and the index
    sandbox.fireflies.delete_meeting(call.id)
    pipeline.sync()
    deleted = pipeline.extract()
    assert deleted["calls_deleted"] == 1 and deleted["calls"] == 0
    assert call_id not in set(pipeline.table()["doc_id"])
    assert pipeline.index()["documents_deleted"] >= 1
    assert "call_insights:" + call_id not in pipeline.search(fact.quote, as_user=guest)
    others = pipeline.customer_calls()[0]
    assert "call_insights:" + SCOPE + others.id in pipeline.search(
        pipeline.data.planted(others)[0].quote, as_user=others.attendees[-1].email
    )


def test_without_a_model_nothing_is_extracted_and_nothing_is_lost(pipeline):
    pipeline.configure()  # no model
    pipeline.sync()
    idle = pipeline.extract()
    assert idle["model_configured"] is False and "SYNC_INSIGHTS_MODEL" in idle["status"]
    assert idle["calls"] == 0 and not pipeline.table().shape[0]
    pipeline.configure(model="gpt-4o-mini")
    later = pipeline.extract()  # no new sync: the cursor did not move
    assert later["model_configured"] is True and later["transcripts"] >= 30
    found, planted = pipeline.recall()
    assert found == planted


def test_a_failed_transcript_is_retried_next_run_and_the_others_are_kept(pipeline, sandbox):
    people = [p for p in sandbox.company.people if not p.is_bot][:2]
    odd = pipeline.data.add_meeting(
        "Zebra escalation customer call",
        people,
        script=[(0, "Welcome."), (1, "Do you support offline mode yet? We really need it.")],
    )
    sandbox.openai.inject_chat("bad_json", count=2, containing="Zebra escalation")
    pipeline.sync()
    first = pipeline.extract()
    assert first["failures"] == 1 and first["transcripts"] >= 30
    assert json.loads(first["retry_pending"]).keys() == {SCOPE + odd.id}
    assert pipeline.recall()[0] == pipeline.recall()[1]  # the others are all in
    assert SCOPE + odd.id not in set(pipeline.table()["doc_id"])
    retried = pipeline.extract()  # nothing new synced: only the failed one
    assert (retried["transcripts"], retried["calls"], retried["failures"]) == (1, 1, 0)
    assert json.loads(retried["retry_pending"]) == {}
    rows = pipeline.table()
    assert ("feature", "offline mode") in set(
        zip(*[rows[rows["doc_id"] == SCOPE + odd.id][c] for c in ("kind", "value")])
    )


def test_every_transcript_failing_fails_the_run_and_keeps_the_cursor(pipeline, sandbox):
    pipeline.configure(model="gpt-4o-mini", api_key="sk-wrong")
    pipeline.sync()
    failed = pipeline.extract(raise_on_error=False)
    assert not failed.success
    pipeline.configure(model="gpt-4o-mini")
    assert pipeline.extract()["transcripts"] >= 30


def test_a_run_killed_before_it_recorded_pays_nothing_again(pipeline, sandbox, monkeypatch):
    from sync_pipelines.documents import DocumentFiles

    pipeline.sync()
    real = DocumentFiles.write

    def killed(self, source, *args, **kwargs):
        if source == "call_insights":
            # (a ValueError fails the run without Dagster's retries, like a kill would)
            raise ValueError("killed before its materialization was recorded")
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(DocumentFiles, "write", killed)
    assert not pipeline.extract(raise_on_error=False).success
    paid = sandbox.openai.chat_requests
    assert paid >= 30
    monkeypatch.setattr(DocumentFiles, "write", real)
    again = pipeline.extract()  # the same events again: every answer is in the cache
    assert again["calls"] == 0 and again["cache_hits"] == again["transcripts"] == paid
    assert again["documents_files"] and sandbox.openai.chat_requests == paid
    found, planted = pipeline.recall()
    assert found == planted


def test_a_transcript_landing_requests_call_insights_then_vector_index(tmp_path):
    from dagster import (
        AssetKey,
        AssetMaterialization,
        evaluate_automation_conditions,
        instance_for_test,
    )

    from sync_pipelines.definitions import defs

    with instance_for_test() as instance:
        instance.add_dynamic_partitions("fireflies_connections", ["acme"])
        result = evaluate_automation_conditions(defs=defs, instance=instance)
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=AssetKey("fireflies"), partition=f"acme|{day(-1)}")
        )
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.get_num_requested(AssetKey("call_insights")) == 1
        assert result.get_num_requested(AssetKey("vector_index")) == 1  # the transcripts
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.total_requested == 0
        instance.report_runless_asset_event(AssetMaterialization(asset_key="call_insights"))
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert result.get_num_requested(AssetKey("vector_index")) == 1  # the insights
        assert result.total_requested == 1
