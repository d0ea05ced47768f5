"""The HubSpot emulator: its API (api.py) serving the shared CRM world (data.py)."""

from sync_pipelines_sandbox.hubspot.api import EMULATOR

__all__ = ["EMULATOR"]
