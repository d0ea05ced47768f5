"""The Gong emulator: its API (api.py) and the calls it serves from the shared Company."""

from sync_pipelines_sandbox.gong.api import EMULATOR

__all__ = ["EMULATOR"]
