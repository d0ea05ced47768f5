"""Slack: channels, messages and thread replies of a workspace."""
