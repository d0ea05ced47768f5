"""Run the time-sensitive tests again with the clock pinned at each edge instant.

`make test` calls this after the main run: a test that passes in the afternoon but not at 00:05,
at 23:55 or on the first of a month fails here. Extra pytest arguments are passed through.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pinned_clock import EDGE_INSTANTS, NOW_ENV

HERE = Path(__file__).parent
# Tests that read data relative to "now": the sources, the sandbox, the index, the schedules
# and alerts, the partitions.
TIME_SENSITIVE = ("test_*source*.py", "test_sandbox_*.py", "test_vector_index.py",
                  "test_operations.py", "test_alerts.py", "test_partitions.py")


# Emulators whose answers do not depend on the day (embeddings, vectors); the source model's
# shape checks; the end-to-end new-source run (its contract checks run here for every source).
CLOCK_FREE = ("test_sandbox_openai.py", "test_sandbox_pinecone.py", "test_source_registry.py",
              "test_new_source_end_to_end.py")


# Failure paths (429s, 5xx, timeouts, kills, rejected credentials, malformed bodies, faults,
# listings failing part-way) behave the same at any hour: they run once, at the pinned
# afternoon. So do the vector-store and embedder variants of a test (Pinecone, OpenAI): at
# the edges the default store and embedder carry it; and the 50,000-message paging check.
FAILURE_PATHS = (
    "not 429 and not 5xx and not rate_limit and not killed and not malformed and not "
    "credentials and not fault and not timeout and not retried and not 401 and not "
    "fails_part_way and not pinecone and not openai and not fifty_thousand"
)


def time_sensitive_files() -> list[str]:
    found = {p for pattern in TIME_SENSITIVE for p in HERE.glob(pattern)}
    return sorted(str(p) for p in found if p.name not in CLOCK_FREE)


def main(argv: list[str]) -> int:
    for instant in EDGE_INSTANTS:
        print(f"--- tests pinned at {instant} ---", flush=True)
        env = {**os.environ, NOW_ENV: instant}
        command = [
            sys.executable, "-m", "pytest", "-q", "-m", "not wall_clock", "-k", FAILURE_PATHS,
            "--dist", "loadscope",  # a module on one worker: its clock starts at the instant once
            *argv,
        ]
        code = subprocess.call([*command, *time_sensitive_files()], env=env)
        if code != 0:
            print(f"FAILED with the clock pinned at {instant} ({NOW_ENV}={instant})", flush=True)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
