"""Fireflies' place in the source contract."""

from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines.sources.fireflies.client import DOCUMENTED_RATE_PER_S, FirefliesResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract

fireflies_asset = source_asset("fireflies")


def expected_ids(company, start, end):
    meetings = FirefliesData.of(company).expected(start.timestamp(), end.timestamp())
    return {f"fireflies:acme:{m.id}" for m in meetings}


CONTRACT = SourceContract(
    name="fireflies",
    asset=fireflies_asset,
    resources=lambda sandbox: {
        "fireflies": FirefliesResource(
            base_url=sandbox.urls["fireflies"], rate_per_s=0, page_size=10, timeout_s=10
        )
    },
    registry_entry=lambda sandbox, conn_id, env: (
        f"  - id: {conn_id}\n    source: fireflies\n    base_url: {sandbox.urls['fireflies']}\n"
        f"    credentials: {{api_key: {env}}}\n"
    ),
    good_secret=SANDBOX_FIREFLIES_API_KEY,
    list_route="transcripts",
    expected_ids=expected_ids,
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},
    bench_size=(30000, 3, 50),
)
