"""The Fireflies emulator: its API (api.py) and the data it serves from the shared Company."""

from sync_pipelines_sandbox.fireflies.api import EMULATOR

__all__ = ["EMULATOR"]
