"""A call's extraction as table rows and as one searchable document.

The document lives in its own doc_id namespace (`call_insights:<the call's doc_id>`), never
under a transcript source's prefix, whose listings delete the ids they do not list. It carries
the call's `access`, so search shows a call's insights only to those who may read the call.
"""

from __future__ import annotations

import datetime as dt

from sync_pipelines.documents import Document, Tombstone
from sync_pipelines.insights.schema import SENTIMENT_KIND, Extraction

SOURCE = "call_insights"
LABELS = {
    "feature": "Feature requested or discussed",
    "pain_point": "Pain point",
    "objection": "Objection",
    "competitor": "Competitor named",
    "action_item": "Action item",
}


def insight_doc_id(call_doc_id: str) -> str:
    return f"{SOURCE}:{call_doc_id}"


def connection_of(doc_id: str) -> str:
    """The connection of a `source:connection:native_id` doc_id."""
    parts = doc_id.split(":")
    return parts[1] if len(parts) > 2 else "default"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(
    call: Document,
    call_time: float,
    extraction: Extraction,
    model: str,
    prompt_version: str,
    extracted_at: float,
) -> list[dict]:
    """One row per insight, plus the call's sentiment row."""
    common = {
        "doc_id": call.doc_id,
        "insight_doc_id": insight_doc_id(call.doc_id),
        "source": call.source,
        "connection": call.connection,
        "title": call.title,
        "url": call.url,
        "call_time": float(call_time),
        "call_date": _iso(call_time),
        "sentiment": extraction.sentiment,
        "model": model,
        "prompt_version": prompt_version,
        "access": list(call.access),
        "extracted_at": float(extracted_at),
    }
    out = [
        {**common, "kind": i.kind, "value": i.value, "quote": i.quote, "owner": i.owner}
        for i in extraction.insights
    ]
    out.append(
        {
            **common,
            "kind": SENTIMENT_KIND,
            "value": extraction.sentiment,
            "quote": extraction.sentiment_quote,
            "owner": None,
        }
    )
    return out


def document(
    call: Document, extraction: Extraction, model: str, prompt_version: str
) -> Document | Tombstone:
    """The call's insights document; a tombstone of it when the call holds no insight (a
    re-extraction that found none retracts what an earlier one indexed)."""
    doc_id = insight_doc_id(call.doc_id)
    if not extraction.insights:
        return Tombstone(doc_id, "the call's transcript holds no insight", call.timestamp_epoch)
    lines = [f'Insights from the call "{call.title}" ({_iso(call.timestamp_epoch)}, {call.source})']
    sentiment = f"Overall sentiment: {extraction.sentiment}"
    if extraction.sentiment_quote:
        sentiment += f' ("{extraction.sentiment_quote}")'
    lines.append(sentiment)
    for insight in extraction.insights:
        label = LABELS[insight.kind]
        if insight.owner:
            label += f" (owner: {insight.owner})"
        lines.append(f'{label}: {insight.value}. Evidence: "{insight.quote}"')
    by_kind = {
        kind: sorted({i.value for i in extraction.insights if i.kind == kind}) for kind in LABELS
    }
    return Document(
        doc_id=doc_id,
        source=SOURCE,
        connection=call.connection,
        title=f"Insights: {call.title}",
        text="\n".join(lines),
        url=call.url,
        author=call.author,
        created_at=call.created_at,
        updated_at=call.updated_at,
        timestamp_epoch=call.timestamp_epoch,
        access=call.access,
        metadata={
            "call_doc_id": call.doc_id,
            "call_source": call.source,
            "sentiment": extraction.sentiment,
            "model": model,
            "prompt_version": prompt_version,
            "features": by_kind["feature"],
            "pain_points": by_kind["pain_point"],
            "objections": by_kind["objection"],
            "competitors": by_kind["competitor"],
            "action_items": by_kind["action_item"],
            "access": list(call.access),
        },
    )
