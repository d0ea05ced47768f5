"""The Gmail client against its emulator: both ways to authenticate (and a refused grant
failing fast), one refresh on a 401, list paging with short pages and an empty answer
without `messages`, Gmail's 403 rate limits retried while other 403s fail at once, an
expired historyId reported as such, and quota units paced per method."""

import json

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sync_pipelines_sandbox.gmail.api import (
    SANDBOX_GMAIL_CLIENT_ID,
    SANDBOX_GMAIL_CLIENT_SECRET,
    SANDBOX_GMAIL_REFRESH_TOKEN,
)

from sync_pipelines import resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourceAuthError
from sync_pipelines.sources.gmail.client import GmailResource, HistoryExpired, units_of

TOKEN_ENV, ID_ENV, SECRET_ENV, SA_ENV = (
    "TEST_GMAIL_REFRESH", "TEST_GMAIL_CLIENT_ID", "TEST_GMAIL_CLIENT_SECRET", "TEST_GMAIL_SA",
)  # fmt: skip
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def oauth_connection(sandbox, monkeypatch, refresh_token=SANDBOX_GMAIL_REFRESH_TOKEN, **options):
    monkeypatch.setenv(TOKEN_ENV, refresh_token)
    monkeypatch.setenv(ID_ENV, SANDBOX_GMAIL_CLIENT_ID)
    monkeypatch.setenv(SECRET_ENV, SANDBOX_GMAIL_CLIENT_SECRET)
    url = sandbox.urls["gmail"]
    return Connection(
        "acme",
        "gmail",
        credentials={"refresh_token": TOKEN_ENV, "client_id": ID_ENV, "client_secret": SECRET_ENV},
        options={"token_uri": f"{url}/token", **options},
        base_url=url,
    )


def sa_connection(sandbox, monkeypatch, mailbox: str, info: dict | None = None):
    url = sandbox.urls["gmail"]
    monkeypatch.setenv(SA_ENV, json.dumps(info or sandbox.gmail.key.info(f"{url}/token")))
    return Connection(
        "acme",
        "gmail",
        credentials={"service_account_json": SA_ENV},
        options={"mailbox": mailbox, "token_uri": f"{url}/token"},
        base_url=url,
    )


def client_for(connection, page_size=20, max_workers=4):
    resource = GmailResource(
        rate_per_s=0, page_size=page_size, timeout_s=10, max_workers=max_workers
    )
    return resource.client_for(connection)


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(resilience, "_sleep", slept.append)
    return slept


def test_oauth_refresh_token_reaches_the_owners_mailbox(sandbox, monkeypatch):
    client = client_for(oauth_connection(sandbox, monkeypatch))
    assert client.profile()["emailAddress"] == sandbox.gmail.data.owner
    assert client.profile()["historyId"]
    assert sandbox.gmail.token_requests == ["refresh_token"]  # one token for both calls


def test_service_account_impersonates_the_mailbox_with_a_signed_assertion(sandbox, monkeypatch):
    other = sorted(sandbox.gmail.data.people)[3]
    client = client_for(sa_connection(sandbox, monkeypatch, other))
    assert client.profile()["emailAddress"] == other
    assert sandbox.gmail.token_requests == [JWT_GRANT]


def test_a_service_account_key_the_sandbox_did_not_issue_is_refused(sandbox, monkeypatch):
    url = sandbox.urls["gmail"]
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = dict(sandbox.gmail.key.info(f"{url}/token"))
    info["private_key"] = forged.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    client = client_for(sa_connection(sandbox, monkeypatch, sandbox.gmail.data.owner, info))
    with pytest.raises(SourceAuthError, match="invalid_grant"):
        client.profile()
    assert sandbox.knobs.calls["getProfile"] == 0


def test_impersonating_a_mailbox_outside_the_domain_fails_fast(sandbox, monkeypatch):
    client = client_for(sa_connection(sandbox, monkeypatch, "someone@elsewhere.test"))
    with pytest.raises(SourceAuthError, match="unauthorized_client"):
        client.profile()
    assert sandbox.gmail.token_requests == [JWT_GRANT]


def test_a_revoked_refresh_token_fails_fast_without_leaking_it(sandbox, monkeypatch):
    client = client_for(oauth_connection(sandbox, monkeypatch, refresh_token="1//revoked-token"))
    with pytest.raises(SourceAuthError) as caught:
        client.profile()
    message = str(caught.value)
    assert "gmail connection 'acme'" in message and "invalid_grant" in message
    assert "revoked-token" not in message
    assert sandbox.gmail.token_requests == ["refresh_token"]  # never retried
    assert sandbox.knobs.calls["getProfile"] == 0


def test_a_401_gets_one_refresh_and_a_second_one_fails(sandbox, monkeypatch):
    client = client_for(oauth_connection(sandbox, monkeypatch))
    client.profile()
    sandbox.gmail.revoke_access_tokens()  # the token expired early
    assert client.labels()
    assert sandbox.gmail.token_requests == ["refresh_token", "refresh_token"]
    sandbox.knobs.inject("labels.list", "401", count=2)
    with pytest.raises(SourceAuthError):
        client.labels()
    assert sandbox.knobs.calls["labels.list"] == 1 + 1 + 2  # ok, revoked+retry, 401 twice


def test_short_pages_are_followed_to_the_end(sandbox, monkeypatch):
    data = sandbox.gmail.data
    start, end = sandbox.company.span()
    expected = {m.id for m in data.expected(data.owner, start, end)}
    sandbox.gmail.short_pages = True
    client = client_for(oauth_connection(sandbox, monkeypatch), page_size=20)
    listed = {m["id"] for m in client.message_ids(start - 1, end + 1)}
    assert expected <= listed  # the listing also holds SPAM-free, TRASH-free mail only
    assert not {m.id for m in data.mailbox(data.owner).mails.values() if not m.visible} & listed
    assert sandbox.knobs.calls["messages.list"] > len(listed) / 20 + 1


def test_an_empty_listing_has_no_messages_key_and_yields_nothing(sandbox, monkeypatch):
    client = client_for(oauth_connection(sandbox, monkeypatch))
    assert list(client.message_ids(1_600_000_000, 1_600_086_400)) == []
    token = next(iter(sandbox.gmail.access_tokens))
    raw = httpx.get(
        f"{sandbox.urls['gmail']}/gmail/v1/users/me/messages",
        params={"q": "after:1600000000 before:1600086400"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert "messages" not in raw and raw["resultSizeEstimate"] == 0


def test_403_rate_limit_reasons_are_retried(sandbox, monkeypatch, no_sleep):
    client = client_for(oauth_connection(sandbox, monkeypatch))
    sandbox.gmail.forbid_next(1, "userRateLimitExceeded")
    sandbox.gmail.forbid_next(1, "rateLimitExceeded")
    assert client.profile()["emailAddress"] == sandbox.gmail.data.owner
    assert client.stats.rate_limited == 2 and len(no_sleep) == 2
    assert sandbox.knobs.calls["getProfile"] == 3


def test_other_403s_fail_at_once(sandbox, monkeypatch, no_sleep):
    client = client_for(oauth_connection(sandbox, monkeypatch))
    sandbox.gmail.forbid_next(1, "insufficientPermissions")
    with pytest.raises(SourceAuthError, match="gmail connection 'acme'"):
        client.profile()
    assert sandbox.knobs.calls["getProfile"] == 1 and no_sleep == []


def test_an_expired_history_id_is_reported_as_such(sandbox, monkeypatch):
    client = client_for(oauth_connection(sandbox, monkeypatch))
    start = client.profile()["historyId"]
    records, latest = client.history(start)
    assert records == [] and latest == start
    sandbox.gmail.data.expire_history(sandbox.gmail.data.owner)
    with pytest.raises(HistoryExpired):
        client.history(start)


def test_calls_are_paced_by_their_quota_units(sandbox, monkeypatch):
    assert GmailResource().pace() == 250.0  # Gmail's units per user per second
    assert [units_of(p) for p in ("/u/me/messages", "/u/me/messages/1", "/u/me/history",
                                  "/u/me/messages/1/attachments/a", "/u/me/labels",
                                  "/u/me/profile")] == [5, 5, 2, 5, 1, 1]  # fmt: skip

    class Counting:
        taken = 0

        def acquire(self):
            Counting.taken += 1
            return 0.0

        def hold(self, seconds):
            pass

    client = client_for(oauth_connection(sandbox, monkeypatch))
    client.http.units = Counting()
    client.profile()
    client.labels()
    message_id = sandbox.gmail.data.expected(sandbox.gmail.data.owner, 0, 4e9)[0].id
    assert client.message(message_id)["id"] == message_id
    assert Counting.taken == 1 + 1 + 5


def test_the_token_uri_may_come_from_the_environment(sandbox, monkeypatch):
    """As the demo and the sandbox's env() set it: GMAIL_TOKEN_URI, no connection option."""
    connection = oauth_connection(sandbox, monkeypatch)
    options = {k: v for k, v in connection.options.items() if k != "token_uri"}
    plain = Connection(
        "acme",
        "gmail",
        credentials=connection.credentials,
        options=options,
        base_url=connection.base_url,
    )
    monkeypatch.delenv("GMAIL_TOKEN_URI", raising=False)
    assert GmailResource().token_uri_for(plain) == "https://oauth2.googleapis.com/token"
    monkeypatch.setenv("GMAIL_TOKEN_URI", f"{sandbox.urls['gmail']}/token")
    assert client_for(plain).profile()["emailAddress"] == sandbox.gmail.data.owner


def test_options_are_checked_naming_the_option():
    from sync_pipelines.sources.gmail.sync import GmailOptions

    with pytest.raises(ValueError, match="gmail option 'access'"):
        GmailOptions.from_connection({"access": "everyone"}, "gmail")
    with pytest.raises(ValueError, match="unknown gmail option 'label'"):
        GmailOptions.from_connection({"label": ["x"]}, "gmail")
    assert GmailOptions.from_connection({"labels": ["Customers"]}, "gmail").labels == ("Customers",)
