"""The Google Sheets emulator: Sheets v4 and Drive v3 reads (api.py), the company's
spreadsheets (data.py) and A1 ranges and cell rendering (render.py)."""

from sync_pipelines_sandbox.google_sheets.api import EMULATOR

__all__ = ["EMULATOR"]
