"""A pytest plugin (`-p sync_pipelines_tests.extra_sources`) that puts source folders kept
outside the repository on the discovery paths: `$SYNC_TEST_EXTRA_SOURCES/sources/<name>/` joins
`sync_pipelines.sources` and `$SYNC_TEST_EXTRA_SOURCES/sandbox/<name>/` joins the sandbox, before
any test module discovers them. test_new_source_end_to_end.py runs the contract suite this way
for a source written in a temporary folder."""

import os

import sync_pipelines.sources as sources_package
import sync_pipelines_sandbox as sandbox_package
from sync_pipelines.sources import registry
from sync_pipelines_sandbox import server

ENV = "SYNC_TEST_EXTRA_SOURCES"

if os.environ.get(ENV):
    sources_package.__path__.append(os.path.join(os.environ[ENV], "sources"))
    sandbox_package.__path__.append(os.path.join(os.environ[ENV], "sandbox"))
    registry.refresh()
    server.emulators.cache_clear()
