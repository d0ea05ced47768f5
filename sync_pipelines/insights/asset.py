"""The `call_insights` asset: insights of every new or changed call transcript.

It reads the document files the transcript sources (declarations with `transcripts=True`)
land, by an event cursor over their materializations like vector_index does, so a failed or
killed run simply starts again from the same events; the answer cache makes that replay free.
Transcripts whose extraction failed are kept in its metadata (`retry_pending`) and tried first
by the next run. Its own document file (one insights document per call, and tombstones for
calls deleted upstream) is named in its metadata under the same key as a source's, so
vector_index indexes it like a source's. Without a configured chat model it extracts nothing,
says why, and keeps its cursor where it was.
"""

import json
import time
from collections.abc import Sequence

from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from sync_pipelines import clock
from sync_pipelines.catalog import asset_owners
from sync_pipelines.errors import fail_fast
from sync_pipelines.index.asset import source_events
from sync_pipelines.index.event_cursor import EventCursor, select_pending
from sync_pipelines.index.tokens import token_counter
from sync_pipelines.insights.cache import InsightCache
from sync_pipelines.insights.changes import Changes, collect
from sync_pipelines.insights.extract import Extractor
from sync_pipelines.insights.model import InsightsModelError
from sync_pipelines.insights.records import SOURCE as CALL_INSIGHTS
from sync_pipelines.insights.schema import PROMPT_VERSION
from sync_pipelines.metrics import peak_rss_mb
from sync_pipelines.sources.base import FILES_KEY, SOURCE_RETRY_POLICY

CURSOR_KEY = "source_event_cursor"
RETRY_KEY = "retry_pending"
# Run after any transcript partition lands; at most one run in flight.
CALL_INSIGHTS_CONDITION = (
    AutomationCondition.any_deps_updated().since_last_handled() & ~AutomationCondition.in_progress()
)


def _previous(context: AssetExecutionContext) -> tuple[EventCursor, dict[str, str]]:
    """The cursor and the transcripts to retry (doc_id -> file) the last run recorded."""
    result = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key), limit=1
    )
    if not result.records:
        return EventCursor(), {}
    metadata = result.records[0].asset_materialization.metadata
    cursor = metadata.get(CURSOR_KEY)
    retry = metadata.get(RETRY_KEY)
    return (
        EventCursor.from_json(cursor.value if cursor is not None else None),
        dict(json.loads(retry.value)) if retry is not None and retry.value else {},
    )


def _idle(cursor: EventCursor, retry: dict[str, str], reason: str) -> MaterializeResult:
    return MaterializeResult(
        metadata={
            "model_configured": False,
            "status": reason,
            "transcripts": 0,
            "calls": 0,
            CURSOR_KEY: cursor.to_json(),
            RETRY_KEY: json.dumps(retry),
        }
    )


def build_call_insights(transcript_assets: Sequence[AssetsDefinition]) -> AssetsDefinition:
    keys = [a.key for a in transcript_assets]

    @asset(
        name=CALL_INSIGHTS,
        group_name="index",
        deps=keys,
        automation_condition=CALL_INSIGHTS_CONDITION,
        required_resource_keys={"chat_model", "insights_store", "documents"},
        kinds={"python", "openai", "parquet"},
        pool=CALL_INSIGHTS,
        retry_policy=SOURCE_RETRY_POLICY,
        owners=asset_owners(),
        description=(
            "Product features, pain points, objections, competitors, action items (with owner) "
            "and overall sentiment of every new or changed call transcript, each with its "
            "evidence quote, from an OpenAI-compatible chat model (structured output; long "
            "calls split and merged). Answers are cached by (transcript hash, model, prompt "
            "version): an unchanged call costs no call. Output: the insights table (Parquet, "
            "`sync-pipelines insights`) and one searchable document per call, with the call's "
            "access; a call deleted upstream leaves both."
        ),
    )
    @fail_fast
    def call_insights(context: AssetExecutionContext) -> MaterializeResult:
        started = time.monotonic()
        previous, retry = _previous(context)
        chat = context.resources.chat_model
        reason = chat.unconfigured_reason()
        if reason:
            context.log.warning(f"call_insights extracts nothing: {reason}")
            return _idle(previous, retry, reason)
        files, cursor = select_pending(source_events(context, keys, previous), previous)
        store = context.resources.insights_store
        table = store.table()
        changes: Changes = collect(files, retry, table, context.log.warning)
        model = chat.build()
        counter = token_counter()
        cache = InsightCache(store.cache_path())
        extractor = Extractor(
            model, cache, counter, chat.part_budget(counter), chat.max_workers, PROMPT_VERSION
        )
        try:
            outcomes = extractor.run(changes.documents)
        finally:
            cache.close()
        stats = extractor.stats
        if stats.failed and not stats.extracted and not stats.refused:
            raise InsightsModelError(
                f"every transcript failed ({stats.failed}); the first: {stats.errors[0]}"
            )
        for error in stats.errors:
            context.log.warning(f"extraction failed, retried next run: {error}")
        written = changes.apply(
            outcomes,
            table,
            context.resources.documents.files(),
            context.run_id,
            model.model,
            clock.now_epoch(),
        )
        for doc_id, refusal in written.refusals.items():
            context.log.warning(f"the model refused {doc_id}: {refusal}")
        tokens_in, tokens_out = model.stats.tokens_in, model.stats.tokens_out
        return MaterializeResult(
            metadata={
                "model_configured": True,
                "model": model.model,
                "prompt_version": PROMPT_VERSION,
                "document_files_read": len(files),
                "transcripts": stats.transcripts,
                "transcripts_split": stats.split_transcripts,
                "parts": stats.parts,
                "calls": model.stats.calls,
                "cache_hits": stats.cache_hits,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "cost_estimate_usd": round(chat.cost_usd(tokens_in, tokens_out), 6),
                "refusals": stats.refused,
                "failures": stats.failed,
                "malformed_answers": model.stats.malformed,
                "retries": model.stats.http.retries,
                "rate_limited_429": model.stats.http.rate_limited,
                "failed_transcripts": MetadataValue.json(stats.errors[:20]),
                "calls_deleted": len(changes.deleted),
                "insight_rows_written": written.rows,
                "insight_documents": written.documents,
                "rows_in_table": written.table_rows,
                "token_counter": counter.name,
                FILES_KEY: MetadataValue.json(written.files),
                CURSOR_KEY: cursor.to_json(),
                RETRY_KEY: json.dumps(written.retry),
                "duration_s": round(time.monotonic() - started, 3),
                "peak_memory_mb": peak_rss_mb(),
            }
        )

    return call_insights
