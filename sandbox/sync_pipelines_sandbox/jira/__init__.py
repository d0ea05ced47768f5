"""The Jira emulator: its API (api.py) and the data it serves from the shared Company."""

from sync_pipelines_sandbox.jira.api import EMULATOR

__all__ = ["EMULATOR"]
