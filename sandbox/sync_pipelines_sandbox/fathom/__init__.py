"""The Fathom emulator: its API (api.py) and the data it serves from the shared Company."""

from sync_pipelines_sandbox.fathom.api import EMULATOR

__all__ = ["EMULATOR"]
