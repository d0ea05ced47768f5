"""Fireflies: meeting transcripts with their summaries, shared as their meetings were."""
