"""Tempo Cloud: worklogs, tied to their Jira issues and authors through the Jira source."""
