"""README command 1 stays true: the demo runs end to end on the embedded defaults."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync_pipelines.sources.registry import names

pytestmark = pytest.mark.integration


def test_demo_syncs_every_source_and_answers_a_search(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "DAGSTER_HOME"))}
    cli = Path(sys.executable).parent / "sync-pipelines"
    result = subprocess.run(
        [str(cli), "demo", "--messages", "400", "--days", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for source in names():
        assert f"] {source}: " in out, f"no progress line for {source}"
    assert "sample search as" in out and "  1. [" in out
    summary = out[out.index("Summary"):]
    vectors = int(summary.split("vectors   :")[1].split()[0])
    assert vectors > 0
    assert (tmp_path / ".demo" / "dagster_home" / "dagster.yaml").exists()
