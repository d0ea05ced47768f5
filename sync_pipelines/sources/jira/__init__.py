"""Jira Cloud: issues of every visible project, with descriptions and recent comments."""
