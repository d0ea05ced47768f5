"""The Jira emulator speaks Jira Cloud's REST shapes to the real `jira` package."""

import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest
from jira import JIRA, JIRAError

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.api import SEARCH_COMMENTS
from sync_pipelines_sandbox.jira.data import (
    ACCOUNT_TIMEZONE,
    ARCHIVED_PROJECT,
    SANDBOX_JIRA_EMAIL,
    SANDBOX_JIRA_TOKEN,
)
from sync_pipelines_sandbox.server import Sandbox

FIELDS = ["summary", "description", "updated", "comment", "project"]


@pytest.fixture(scope="module")
def emulators():
    with Sandbox(company=Company.generate(seed=11, messages=900, days=4)) as sb:
        yield sb


@pytest.fixture(scope="module")
def jira(emulators) -> JIRA:
    return JIRA(
        server=emulators.urls["jira"],
        basic_auth=(SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN),
        options={"rest_api_version": "3"},
    )


def search_all(jira: JIRA, jql: str, page: int) -> tuple[list[dict], int]:
    """Every issue of a query with our own token loop; also the number of pages read."""
    issues, token, pages = [], None, 0
    while True:
        body = jira.enhanced_search_issues(
            jql, nextPageToken=token, maxResults=page, fields=list(FIELDS), json_result=True
        )
        pages += 1
        assert "total" not in body and "startAt" not in body
        issues += body["issues"]
        token = body.get("nextPageToken")
        if body["isLast"]:
            assert token is None
            return issues, pages


def test_construction_reads_server_info_as_cloud(jira, emulators):
    assert jira.deploymentType == "Cloud"
    assert jira._version == (1001, 0, 0)
    assert emulators.knobs.calls["serverInfo"] >= 1
    with pytest.raises(JIRAError) as failure:
        JIRA(server=emulators.urls["jira"], basic_auth=(SANDBOX_JIRA_EMAIL, "revoked"))
    assert failure.value.status_code == 401
    assert failure.value.text == "Client must be authenticated to access this resource."


def test_enhanced_search_pages_by_token_in_updated_order(jira, emulators):
    site = emulators.jira.site
    truth = sorted(
        (i for i in site.searchable() if i.project.key == "CORE"), key=lambda i: i.updated_ms
    )
    issues, pages = search_all(jira, "project = CORE ORDER BY updated ASC", page=7)
    assert [i["key"] for i in issues] == [i.key for i in truth]
    assert pages == -(-len(truth) // 7) > 1
    assert set(issues[0]["fields"]) == set(FIELDS)
    # the package's own loop (maxResults=0) reads every page too, with the /field translation
    everything = jira.enhanced_search_issues("project = CORE", maxResults=0, fields=["summary"])
    assert len(everything) == len(truth)
    assert emulators.knobs.calls["field"] >= 1


def test_search_without_fields_returns_ids_only_and_larger_pages(jira, emulators):
    body = jira.enhanced_search_issues(
        "ORDER BY key ASC", maxResults=1000, fields=[], json_result=True
    )
    assert body["isLast"] and len(body["issues"]) == len(emulators.jira.site.searchable()) > 100
    assert body["issues"][0]["fields"] == {}
    capped = jira.enhanced_search_issues(
        "ORDER BY key ASC", maxResults=1000, fields=["summary"], json_result=True
    )
    assert len(capped["issues"]) == 100 and not capped["isLast"]


def test_jql_dates_are_read_in_the_account_time_zone(jira, emulators):
    site = emulators.jira.site
    tz = ZoneInfo(ACCOUNT_TIMEZONE)
    issue = site.searchable()[0]
    local = dt.datetime.fromtimestamp(issue.updated_ms / 1000, tz).replace(second=0, microsecond=0)
    since = local.strftime("%Y-%m-%d %H:%M")
    until = (local + dt.timedelta(minutes=1)).strftime("%Y/%m/%d %H:%M")
    jql = f'project = {issue.project.key} AND updated >= "{since}" AND updated < "{until}"'
    issues, _ = search_all(jira, jql, page=50)
    assert issue.key in {i["key"] for i in issues}
    # the same wall-clock minute read as UTC would miss it by five and a half hours
    utc = dt.datetime.fromtimestamp(issue.updated_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
    jql = f'project = {issue.project.key} AND updated >= "{utc}" AND updated < "{since}"'
    assert issue.key not in {i["key"] for i in search_all(jira, jql, page=50)[0]}
    assert jira.myself()["timeZone"] == ACCOUNT_TIMEZONE
    updated = dt.datetime.fromisoformat(issues[0]["fields"]["updated"])
    assert updated.utcoffset() == dt.timedelta(hours=5, minutes=30)


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
        (f"project = {ARCHIVED_PROJECT.key}", "does not exist for the field 'project'"),
        ("project = SUBS OR project = CORE", "expecting 'AND' or 'ORDER BY'"),
        ('updated >= "yesterday"', "Date value 'yesterday' for field 'updated' is invalid."),
        ("id in (99999999)", "An issue with key '99999999' does not exist for field 'id'."),
        ("flavour = vanilla", "Field 'flavour' does not exist"),
    ],
)
def test_invalid_jql_is_a_400_in_jiras_error_shape(jira, jql, message):
    with pytest.raises(JIRAError) as failure:
        jira.enhanced_search_issues(jql, maxResults=10, json_result=True)
    assert failure.value.status_code == 400
    assert message in failure.value.text


def test_old_search_endpoint_is_gone_and_auth_errors_use_jiras_body(emulators):
    url = emulators.urls["jira"]
    auth = (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    gone = httpx.get(f"{url}/rest/api/3/search", params={"jql": "project = SUBS"}, auth=auth)
    assert gone.status_code == 410 and "search/jql" in gone.json()["errorMessages"][0]
    denied = httpx.get(f"{url}/rest/api/3/myself", auth=(SANDBOX_JIRA_EMAIL, "nope"))
    assert denied.status_code == 401
    assert denied.json() == {
        "errorMessages": ["Client must be authenticated to access this resource."],
        "errors": {},
    }
    assert httpx.get(f"{url}/rest/api/3/serverInfo").status_code == 200  # anonymous


def test_project_search_pages_and_hides_archived_projects(emulators):
    url, auth = emulators.urls["jira"], (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    keys, start = [], 0
    while True:
        page = httpx.get(
            f"{url}/rest/api/3/project/search",
            params={"startAt": start, "maxResults": 3},
            auth=auth,
        ).json()
        keys += [p["key"] for p in page["values"]]
        start += len(page["values"])
        if page["isLast"]:
            break
        assert page["nextPage"].startswith(url)
    assert keys == sorted(p.key for p in emulators.company.projects)
    archived = httpx.get(
        f"{url}/rest/api/3/project/search", params={"status": "archived"}, auth=auth
    ).json()
    assert [p["key"] for p in archived["values"]] == [ARCHIVED_PROJECT.key]


def test_issue_comments_users_and_archived_issues(jira, emulators):
    site = emulators.jira.site
    long = max(site.searchable(), key=lambda i: len(i.comments))
    assert len(long.comments) > SEARCH_COMMENTS
    body = jira.enhanced_search_issues(
        f"key = {long.key}", maxResults=1, fields=["comment"], json_result=True
    )
    block = body["issues"][0]["fields"]["comment"]
    assert len(block["comments"]) == SEARCH_COMMENTS and block["total"] == len(long.comments)
    newest = jira.comments(long.key, max_results=3, order_by="-created")
    assert [c.id for c in newest] == [c.id for c in long.comments[-3:][::-1]]
    legacy = next(i for i in site.issues.values() if i.project == ARCHIVED_PROJECT)
    assert jira.issue(legacy.id, fields="project").key == legacy.key
    with pytest.raises(JIRAError) as missing:
        jira.issue("99999999")
    assert missing.value.status_code == 404
    person = site.users[long.reporter]
    assert jira.user(person.account_id).displayName == person.display_name
    with pytest.raises(JIRAError):
        jira.user("712020:nobody")


def test_bulk_users_omit_unknown_accounts_and_page(emulators):
    site = emulators.jira.site
    known = list(site.users)[:5]
    url, auth = emulators.urls["jira"], (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    params = [("accountId", a) for a in [*known, "712020:gone"]] + [("maxResults", "3")]
    first = httpx.get(f"{url}/rest/api/3/user/bulk", params=params, auth=auth).json()
    assert not first["isLast"] and len(first["values"]) == 3
    rest = httpx.get(
        f"{url}/rest/api/3/user/bulk", params=[*params, ("startAt", "3")], auth=auth
    ).json()
    assert rest["isLast"]
    names = [u["displayName"] for u in first["values"] + rest["values"]]
    assert names == [site.users[a].display_name for a in known]


def test_v3_serves_adf_and_v2_wiki_markup(emulators):
    site = emulators.jira.site
    issue = next(
        i for i in site.searchable() if any(kind == "bullets" for kind, _ in i.description)
    )
    url, auth = emulators.urls["jira"], (SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN)
    v3 = httpx.get(f"{url}/rest/api/3/issue/{issue.key}", auth=auth).json()["fields"]
    v2 = httpx.get(f"{url}/rest/api/2/issue/{issue.id}", auth=auth).json()["fields"]
    assert v3["description"]["type"] == "doc"
    assert any(node["type"] == "bulletList" for node in v3["description"]["content"])
    assert isinstance(v2["description"], str) and "\n* " in v2["description"]


def test_paging_survives_edits_between_pages(jira, emulators):
    jql = "project = WEB ORDER BY updated ASC"
    first = jira.enhanced_search_issues(jql, maxResults=5, fields=["updated"], json_result=True)
    edited = first["issues"][0]["key"]
    emulators.jira.edit_issue(edited, comment="Reopened after the release.")
    seen = [i["key"] for i in first["issues"]]
    token = first["nextPageToken"]
    while token:
        page = jira.enhanced_search_issues(
            jql, nextPageToken=token, maxResults=5, fields=["updated"], json_result=True
        )
        seen += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
    web = {i.key for i in emulators.jira.site.searchable() if i.project.key == "WEB"}
    assert set(seen) == web and seen[-1] == edited  # nothing skipped; the edit moved last
    with pytest.raises(JIRAError) as bad:
        jira.enhanced_search_issues(
            "project = SUBS", nextPageToken=first["nextPageToken"], json_result=True, maxResults=5
        )
    assert bad.value.status_code == 400


def test_rate_limit_answers_429_with_retry_after(emulators):
    emulators.knobs.inject("search/jql", "429", retry_after=3)
    response = httpx.get(
        f"{emulators.urls['jira']}/rest/api/3/search/jql",
        params={"jql": "project = SUBS"},
        auth=(SANDBOX_JIRA_EMAIL, SANDBOX_JIRA_TOKEN),
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
