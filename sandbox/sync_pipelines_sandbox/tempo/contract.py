"""Tempo's place in the source contract (its connections come with a Jira connection)."""

from datetime import datetime, time, timedelta, timezone

from sync_pipelines import clock
from sync_pipelines_sandbox.jira.data import SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN
from sync_pipelines_sandbox.tempo.data import SANDBOX_TEMPO_TOKEN, TempoWorklogs
from sync_pipelines.sources.jira import client as jira
from sync_pipelines.sources.jira.client import JiraResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines.sources.tempo import client as tempo
from sync_pipelines.sources.tempo.client import TempoResource
from sync_pipelines_sandbox.contract import SourceContract

tempo_asset = source_asset("tempo")

JIRA_EMAIL_ENV, JIRA_TOKEN_ENV = "CONTRACT_TEMPO_JIRA_EMAIL", "CONTRACT_TEMPO_JIRA_TOKEN"


def expected_ids(company, start, end):
    store = TempoWorklogs.of(company)
    active = {p.key for p in store.site.projects}
    upper = min(end.timestamp(), clock.now_epoch())
    return {
        f"tempo:acme:{w.id}"
        for w in store.updated_between(start.timestamp(), upper)
        if w.issue.project.key in active
    }


def delete_record(sandbox) -> str:
    """Deletes a worklog a sync of `data_days` indexes, updated on a past day (Tempo keeps no
    trace, so only the reconciliation's listing shows it); answers its doc_id."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), timezone.utc)
    start, end = (midnight + timedelta(days=first)), midnight
    indexed = expected_ids(sandbox.company, start, end)
    worklog_id = min(int(doc_id.rpartition(":")[2]) for doc_id in indexed)
    sandbox.tempo.delete_worklog(worklog_id)
    return f"tempo:acme:{worklog_id}"


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: tempo\n    base_url: {sandbox.urls['tempo']}\n"
        f"    credentials: {{token: {env}}}\n"
        f"  - id: {conn_id}\n    source: jira\n    base_url: {sandbox.urls['jira']}\n"
        f"    credentials: {{api_token: {JIRA_TOKEN_ENV}, email: {JIRA_EMAIL_ENV}}}\n"
    )


CONTRACT = SourceContract(
    name="tempo",
    asset=tempo_asset,
    resources=lambda sandbox: {
        # Listing pages of 50 too, so a failure can strike its second page.
        "tempo": TempoResource(
            rate_per_s=0, page_size=50, listing_page_size=50, timeout_s=5, max_attempts=4
        ),
        "jira": JiraResource(rate_per_s=0, timeout_s=5, max_attempts=4),
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_TEMPO_TOKEN,
    list_route="worklogs",
    expected_ids=expected_ids,
    extra_env={JIRA_EMAIL_ENV: SANDBOX_JIRA_EMAIL, JIRA_TOKEN_ENV: SANDBOX_JIRA_TOKEN},
    # Issue lookups spend the Jira budget, not Tempo's.
    rate_budgets={"worklogs": tempo.DOCUMENTED_RATE_PER_S, "*": jira.DOCUMENTED_RATE_PER_S},
    bench_size=(60000, 7, 20),
    delete_record=delete_record,
    # Tempo shows a deletion only by absence, and a sync reads only what was updated.
    deletion_seen_by="reconcile",
    reconcile_route="worklogs",
)
