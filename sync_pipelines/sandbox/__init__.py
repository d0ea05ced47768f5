"""Built-in emulators of the external APIs, seeded with a synthetic company (DESIGN.md, Sandbox).

`Sandbox` serves them on 127.0.0.1 for tests and benchmarks; `python -m sync_pipelines.sandbox`
serves them on fixed ports for the quickstart.
"""

from sync_pipelines.sandbox.company import Company, Person, Project
from sync_pipelines.sandbox.knobs import Knobs
from sync_pipelines.sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines.sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines.sandbox.server import Sandbox
from sync_pipelines.sandbox.slack import SANDBOX_SLACK_TOKEN

__all__ = [
    "Company",
    "Knobs",
    "Person",
    "Project",
    "SANDBOX_OPENAI_KEY",
    "SANDBOX_PINECONE_KEY",
    "SANDBOX_SLACK_TOKEN",
    "Sandbox",
]
