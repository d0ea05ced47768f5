"""vector_index under failing embeddings and vector servers: a RetryPolicy for what may pass,
Failure(allow_retries=False) for what cannot (rejected keys, garbage after the client's retries),
with messages that name the server."""

import pytest
from dagster import DagsterEventType

from sync_pipelines import resilience
from sync_pipelines.definitions import vector_index
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines.sources.base import SOURCE_RETRY_POLICY
from sync_pipelines_tests.conftest import day

pytestmark = pytest.mark.integration
BAD_KEY = "sk-rejected-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_backoff_sleeps(monkeypatch):
    monkeypatch.setattr(resilience, "_sleep", lambda seconds: None)


def use_openai(harness, api_key=SANDBOX_OPENAI_KEY):
    harness.embedder = EmbedderResource(
        kind="openai",
        openai_api_key=api_key,
        openai_base_url=harness.sandbox.openai_base_url,
        dimension=384,
    )


def failure_of(result):
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    (failure,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    data = failure.step_failure_data
    assert data.user_failure_data is not None  # a Failure: with allow_retries=False, see above
    return data.error.message


def test_vector_index_retries_like_the_sources():
    assert vector_index.op.retry_policy == SOURCE_RETRY_POLICY


def test_a_rejected_embedder_key_fails_without_dagster_retries(harness):
    harness.sync_slack([day(-1)])
    use_openai(harness, api_key=BAD_KEY)
    message = failure_of(harness.index(raise_on_error=False))
    assert f"embeddings server {harness.sandbox.openai_base_url}" in message
    assert "HTTP 401" in message and BAD_KEY not in message
    assert harness.sandbox.knobs.calls["embeddings"] == 1


def test_a_rejected_pinecone_key_fails_without_dagster_retries(harness):
    harness.vector_store = VectorStoreResource(
        kind="pinecone",
        pinecone_api_key="pcsk_rejected_0123456789",
        pinecone_host=harness.sandbox.pinecone_host,
        ledger_url=f"sqlite:///{harness.tmp / 'ledger.sqlite'}",
    )
    message = failure_of(harness.index(raise_on_error=False))
    assert f"Pinecone index host {harness.sandbox.pinecone_host}" in message
    assert "HTTP 401" in message and "pcsk_rejected_0123456789" not in message


def test_a_dimension_mismatch_fails_without_dagster_retries(harness):
    harness.vector_store = VectorStoreResource(
        kind="pinecone",
        pinecone_api_key=SANDBOX_PINECONE_KEY,
        pinecone_host=harness.sandbox.pinecone_host,
        ledger_url=f"sqlite:///{harness.tmp / 'ledger.sqlite'}",
    )
    harness.sync_slack([day(-1)])
    harness.index()  # the index now holds 384-dimension vectors
    harness.sync_slack([day(-2)])
    harness.embedder = EmbedderResource(kind="hashing", dimension=128)
    message = failure_of(harness.index(raise_on_error=False))
    assert "dimension 384 but embedder produces 128" in message


def test_502_then_garbage_from_the_embeddings_server_fails_naming_it(harness):
    harness.sync_slack([day(-1)])
    use_openai(harness)
    knobs = harness.sandbox.knobs
    knobs.inject("embeddings", "502")
    knobs.inject("embeddings", "html", count=100)
    message = failure_of(harness.index(raise_on_error=False))
    assert f"embeddings server {harness.sandbox.openai_base_url}" in message
    assert "HTTP 200 (text/html" in message and "Sign in" in message
    assert "AttributeError" not in message


def test_garbage_then_good_answers_index_in_one_run(harness):
    harness.sync_slack([day(-1)])
    use_openai(harness)
    harness.sandbox.knobs.inject("embeddings", "malformed", count=2)
    meta = harness.metadata(harness.index(), "vector_index")
    assert meta["chunks_embedded"] > 0
