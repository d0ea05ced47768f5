"""Built-in emulators of the external APIs, seeded with a synthetic company (DESIGN.md, Sandbox).

`Sandbox` serves them on 127.0.0.1 for tests and benchmarks; `python -m sync_pipelines_sandbox`
serves them on fixed ports for the quickstart. A source's sandbox credentials live beside its
emulator (`sync_pipelines_sandbox/<source>/`), not here: this package names no source.
"""

from sync_pipelines_sandbox.company import Company, Person, Project
from sync_pipelines_sandbox.knobs import Knobs
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_sandbox.server import Sandbox

__all__ = [
    "Company",
    "Knobs",
    "Person",
    "Project",
    "SANDBOX_OPENAI_KEY",
    "SANDBOX_PINECONE_KEY",
    "Sandbox",
]
