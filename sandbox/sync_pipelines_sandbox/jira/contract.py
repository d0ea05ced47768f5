"""Jira's place in the source contract."""

from datetime import datetime, time, timedelta, timezone

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


def delete_record(sandbox) -> str:
    """Deletes an issue a sync of `data_days` indexes, updated on a past day (Jira keeps no
    trace, so only the reconciliation's listing shows it); answers its doc_id."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), timezone.utc)
    indexed = expected_ids(sandbox.company, midnight + timedelta(days=first), midnight)
    issue_id = min(int(doc_id.rpartition(":")[2]) for doc_id in indexed)
    sandbox.jira.delete_issue(str(issue_id))
    return f"jira:acme:{issue_id}"


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: jira\n    base_url: {sandbox.urls['jira']}\n"
        f"    credentials: {{api_token: {env}, email: {EMAIL_ENV}}}\n"
    )


CONTRACT = SourceContract(
    name="jira",
    asset=jira_asset,
    resources=lambda sandbox: {
        # Listing pages of 25 too, so a failure can strike its second page.
        "jira": JiraResource(
            rate_per_s=0, page_size=25, listing_page_size=25, timeout_s=5, max_attempts=4
        )
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_JIRA_TOKEN,
    list_route="search/jql",
    expected_ids=expected_ids,
    extra_env={EMAIL_ENV: SANDBOX_JIRA_EMAIL},
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},
    bench_size=(60000, 7, 10),
    delete_record=delete_record,
    # Jira shows a deletion (or a move out of the projects) only by absence from search.
    deletion_seen_by="reconcile",
    reconcile_route="search/jql",
)
