"""The CallRail emulator: its API (api.py) and the account it serves from the CRM world."""

from sync_pipelines_sandbox.callrail.api import EMULATOR

__all__ = ["EMULATOR"]
