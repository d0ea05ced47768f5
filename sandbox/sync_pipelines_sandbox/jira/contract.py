"""Jira's place in the source contract."""


from sync_pipelines import clock
from sync_pipelines_sandbox.jira.data import SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN, JiraSite
from sync_pipelines.sources.jira.client import DOCUMENTED_RATE_PER_S, JiraResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract

jira_asset = source_asset("jira")

EMAIL_ENV = "CONTRACT_JIRA_EMAIL"


def expected_ids(company, start, end):
    upper = min(end.timestamp(), clock.now_epoch() // 60 * 60)
    site = JiraSite.of(company)
    return {f"jira:acme:{i.id}" for i in site.updated_between(start.timestamp(), upper)}


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: jira\n    base_url: {sandbox.urls['jira']}\n"
        f"    credentials: {{api_token: {env}, email: {EMAIL_ENV}}}\n"
    )


CONTRACT = SourceContract(
    name="jira",
    asset=jira_asset,
    resources=lambda sandbox: {
        "jira": JiraResource(rate_per_s=0, page_size=25, timeout_s=5, max_attempts=4)
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_JIRA_TOKEN,
    list_route="search/jql",
    expected_ids=expected_ids,
    extra_env={EMAIL_ENV: SANDBOX_JIRA_EMAIL},
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},
    bench_size=(60000, 7, 10),
)
