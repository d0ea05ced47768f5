"""The Genius emulator: a Genius-like MariaDB database (db.py, data.py) behind a MySQL proxy
that applies the sandbox's knobs (proxy.py)."""

from sync_pipelines_sandbox.genius.api import EMULATOR

__all__ = ["EMULATOR"]
