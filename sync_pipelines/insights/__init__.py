"""call_insights: structured insights (features, pain points, objections, competitors, action
items, sentiment) extracted from call transcripts by an OpenAI-compatible chat model."""
