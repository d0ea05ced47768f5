"""The Slack emulator: its API (api.py) and the data it serves from the shared Company."""

from sync_pipelines_sandbox.slack.api import EMULATOR

__all__ = ["EMULATOR"]
