"""Tempo Cloud: worklogs, tied to their Jira issues and authors through the Jira source.

Its sync needs two resources: `tempo`, and `jira` to resolve issue ids, author names and the
active projects through the Jira connection the Tempo connection names.
"""

from sync_pipelines.connections import RegistryError
from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.tempo.client import TempoResource
from sync_pipelines.sources.tempo.reconcile import list_ids
from sync_pipelines.sources.tempo.sync import SOURCE as NAME
from sync_pipelines.sources.tempo.sync import TempoOptions, TempoSync

JIRA = "jira"


def _total(*parts: CallStats) -> CallStats:
    total = CallStats()
    for stats in parts:
        total.add(
            api_calls=stats.api_calls,
            rate_limited=stats.rate_limited,
            retries=stats.retries,
            throttle_wait_s=stats.throttle_wait_s,
        )
    return total


def sync(run: SourceRun) -> SyncOutcome:
    jira_id = run.options.jira_connection or run.connection.id
    try:
        jira_connection = run.context.resources.connections.get(JIRA, jira_id)
    except RegistryError as exc:
        raise ValueError(
            f"tempo connection '{run.connection.id}' resolves issues through jira connection "
            f"'{jira_id}' (option 'jira_connection'): {exc}"
        ) from exc
    jira = run.context.resources.jira.client_for(jira_connection)
    try:
        result = TempoSync(run.client, jira, run.options, run.connection.id).run(
            run.window, run.mark
        )
    finally:
        jira.close()
    return SyncOutcome.from_result(
        result, _total(run.client.stats, jira.stats), jira_api_calls=jira.stats.api_calls
    )


SOURCE = SourceDeclaration(
    name=NAME,
    resource=TempoResource,
    sync=sync,
    options=TempoOptions,
    extra_resource_keys=frozenset({JIRA}),
    description=(
        "Tempo worklogs, one document per worklog tied to its Jira issue and author, "
        "partitioned by the day the worklog was last updated; worklogs on inactive "
        "projects are skipped and counted. A deleted worklog leaves the index after the "
        "daily listing of the worklogs updated in the last 30 days."
    ),
    schedule=Cadence(every_minutes=60, at_minute=41, stale_after_minutes=120),
    # Tempo shows a deletion only by absence: daily at 03:50 UTC, the worklogs updated in the
    # last year (a page holds 5,000, so a year costs a few calls; an older one is rarely
    # deleted).
    reconcile=Reconciliation(list_ids, days=366, at_hour=3, at_minute=50),
    credentials_env={"token": "TEMPO_API_TOKEN"},
    docs_url="https://apidocs.tempo.io/",
)
