"""README command 1: start the sandbox, sync every source of a sample company, build the index,
and search it.

Everything runs on the embedded defaults: the sandbox emulators on 127.0.0.1, the local hashing
embedder, the LanceDB store and a SQLite DAGSTER_HOME under `.demo/`, so it needs no network
and no account. Runs go through Dagster's own run storage, so `dagster dev` afterwards (with
the same DAGSTER_HOME) shows them.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

from sync_pipelines import clock

DEMO_DIR = Path(".demo")
DEMO_CONNECTION = "acme"
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


def _say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_environment(root: Path, sandbox, sources) -> None:
    """A DAGSTER_HOME on SQLite, a data dir, and a registry with one sandbox connection per
    declared source whose secrets are the sandbox's standard environment variables; no
    client-side pacing (the sandbox enforces no rate limit unless asked to)."""
    home = (root / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(INSTANCE_YAML)
    lines = ["connections:"]
    elsewhere = {}  # a database URL is no registry base_url: <SOURCE>_BASE_URL names it
    for source in sources:
        credentials = source.credentials_env
        url = sandbox.urls[source.name]
        lines += [f"  - id: {DEMO_CONNECTION}", f"    source: {source.name}"]
        if url.startswith(("http://", "https://")):
            lines.append(f"    base_url: {url}")
        else:
            elsewhere[source.base_url_env] = url
        lines += [
            "    credentials: {" + ", ".join(f"{k}: {v}" for k, v in credentials.items()) + "}",
        ]
        if source.demo_options:
            lines.append(f"    options: {json.dumps(dict(source.demo_options))}")
    registry = (root / "connections.yaml").resolve()
    registry.write_text("\n".join(lines) + "\n")
    os.environ.update(sandbox.env())
    os.environ.update(elsewhere)
    os.environ.update({s.rate_env: "0" for s in sources})
    os.environ.update(
        {
            "DAGSTER_HOME": str(home),
            "SYNC_DATA_DIR": str((root / "data").resolve()),
            "SYNC_CONNECTIONS_FILE": str(registry),
            "SYNC_EMBEDDER": "wordllama",
            "SYNC_VECTOR_STORE": "lance",
            # call_insights asks the sandbox's chat model (OPENAI_BASE_URL/OPENAI_API_KEY)
            "SYNC_INSIGHTS_MODEL": "gpt-4o-mini",
        }
    )


def run_demo(messages: int = 3000, days: int = 5, seed: int = 7, root: Path = DEMO_DIR) -> int:
    from sync_pipelines.cli import sandbox_entry

    Company = sandbox_entry("company").Company
    Sandbox = sandbox_entry("server").Sandbox

    started = time.monotonic()
    _say(f"generating a sample company: {messages} chat messages over {days} days (seed {seed})")
    company = Company.generate(seed=seed, messages=messages, days=days)
    with Sandbox(company=company) as sandbox:
        _say("sandbox APIs on " + ", ".join(f"{k} {v}" for k, v in sandbox.urls.items()))
        from sync_pipelines.sources.registry import declarations

        prepare_environment(root, sandbox, declarations())

        from dagster import DagsterInstance

        from sync_pipelines.definitions import SOURCE_NAMES, defs
        from sync_pipelines.index.search import search
        from sync_pipelines.partitions import connections_partitions_name
        from sync_pipelines.resources import ConnectionRegistry
        from sync_pipelines.sensors import partition_changes

        instance = DagsterInstance.get()
        existing = {
            s: set(instance.get_dynamic_partitions(connections_partitions_name(s)))
            for s in SOURCE_NAMES
        }
        for source, (add, _) in partition_changes(
            ConnectionRegistry(), SOURCE_NAMES, existing
        ).items():
            if add:
                instance.add_dynamic_partitions(connections_partitions_name(source), add)

        today = clock.today()
        first = today - timedelta(days=days - 1)
        documents = 0
        for source in SOURCE_NAMES:
            _say(f"materializing {source} for {DEMO_CONNECTION}, {first}..{today} (one run)")
            result = defs.resolve_job_def(f"{source}_sync").execute_in_process(
                instance=instance,
                run_config=QUIET,
                tags={
                    "dagster/asset_partition_range_start": f"{DEMO_CONNECTION}|{first}",
                    "dagster/asset_partition_range_end": f"{DEMO_CONNECTION}|{today}",
                },
            )
            meta = _metadata(result, source)
            documents += meta["run_documents_written"]
            _say(
                f"{source}: {meta['run_documents_written']} documents in "
                f"{meta['run_api_calls']} API calls ({meta['run_duration_s']} s)"
            )
        _say("materializing call_insights (transcripts -> features, pain points, action items)")
        insights = _metadata(
            defs.resolve_job_def("call_insights_update").execute_in_process(
                instance=instance, run_config=QUIET
            ),
            "call_insights",
        )
        _say(
            f"call_insights: {insights['transcripts']} transcripts, {insights['calls']} model "
            f"calls, {insights['tokens_in']} + {insights['tokens_out']} tokens "
            f"(~${insights['cost_estimate_usd']})"
        )
        _say("materializing vector_index (chunk, embed, upsert)")
        index = defs.resolve_job_def("vector_index_update").execute_in_process(
            instance=instance, run_config=QUIET
        )
        meta = _metadata(index, "vector_index")
        _say(
            f"vector_index: {meta['documents']} documents -> {meta['chunks_seen']} chunks, "
            f"{meta['chunks_embedded']} embedded, {meta['vectors_in_store']} vectors in store "
            f"({meta['duration_s']} s)"
        )
        resources = defs.resources
        store = resources["vector_store"].build()
        embedder = resources["embedder"].build()
        person = company.people[0]
        question = f"{company.issue_keys[0]} status and release plan"
        _say(f'sample search as {person.email}: "{question}"')
        for rank, hit in enumerate(
            search(question, embedder, store, top_k=5, as_user=person.email), 1
        ):
            print(f"  {rank}. [{hit.score:.3f}] ({hit.source}) {hit.title}: {hit.snippet[:100]}")
    print()
    print("Summary")
    print(f"  documents : {documents} synced from {len(SOURCE_NAMES)} sources")
    print(f"  chunks    : {meta['chunks_seen']}")
    print(f"  vectors   : {meta['vectors_in_store']}")
    print(f"  time      : {time.monotonic() - started:.1f} s")
    print(f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']}  (dagster dev -w workspace.yaml shows the runs)")
    print(
        f"  search: SYNC_DATA_DIR={os.environ['SYNC_DATA_DIR']} .venv/bin/sync-pipelines query "
        f'"{question}" --as {person.email}'
    )
    return 0


def _metadata(result, asset_name: str) -> dict:
    if not result.success:
        raise SystemExit(f"demo: the {asset_name} run failed; see the log above")
    events = result.asset_materializations_for_node(asset_name)
    return {k: v.value for k, v in events[-1].metadata.items()}
