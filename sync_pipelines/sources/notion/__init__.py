"""Notion: pages shared with the integration, their full block content, by last edit."""
