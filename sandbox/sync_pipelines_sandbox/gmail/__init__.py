"""The Gmail emulator: its API and token endpoint (api.py) and the company's mailboxes (data.py)."""

from sync_pipelines_sandbox.gmail.api import EMULATOR

__all__ = ["EMULATOR"]
