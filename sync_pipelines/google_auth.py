"""Google credentials for any Google API source, as an httpx auth flow on the shared client.

Two kinds of credentials, both with google-auth, chosen by what the connection names
(environment variable NAMES in the registry, never the secrets):

- OAuth for one user: `refresh_token`, `client_id`, `client_secret` (an OAuth client of the
  Google Cloud project and the refresh token a user granted it):
  `google.oauth2.credentials.Credentials`.
- A service account: `service_account_json` (its JSON key), acting as itself, or with
  domain-wide delegation as `subject` (a Workspace user the admin let it impersonate):
  `service_account.Credentials.from_service_account_info(..., subject=subject)`.

The caller gives the scopes and the token endpoint (Google's unless a sandbox's is named). A
token is fetched before the first call and again when it expires; a 401 from the API gets one
refresh and one resend, and a second 401 fails like any rejected credential. A refused grant
(invalid_grant, invalid_client, unauthorized_client) fails fast and is never retried; Google's
own trouble at the token endpoint (5xx, temporarily_unavailable) is retried like any 5xx.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Sequence
from typing import Any

import httpx
from google.auth import exceptions as google_errors
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from sync_pipelines.connections import Connection
from sync_pipelines.errors import SourceAuthError, TransientError

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SERVICE_ACCOUNT = "service_account_json"


def uses_service_account(connection: Connection) -> bool:
    return SERVICE_ACCOUNT in connection.credentials


def google_credentials(
    connection: Connection,
    label: str,
    token_uri: str,
    scopes: Sequence[str],
    subject: str | None = None,
) -> Any:
    """google-auth credentials for the connection (see the module docstring), not yet
    refreshed; CredentialError when a named environment variable is unset, SourceAuthError
    when the service account key is not a usable JSON key."""
    if uses_service_account(connection):
        try:
            info = json.loads(connection.secret(SERVICE_ACCOUNT))
        except json.JSONDecodeError:
            raise SourceAuthError(
                f"{label}: the service account key is not JSON (credential '{SERVICE_ACCOUNT}')"
            ) from None
        if not isinstance(info, dict):
            raise SourceAuthError(f"{label}: the service account key is not a JSON object")
        try:
            return service_account.Credentials.from_service_account_info(
                {**info, "token_uri": token_uri}, scopes=list(scopes), subject=subject
            )
        except (ValueError, KeyError) as exc:
            raise SourceAuthError(
                f"{label}: the service account key is not usable ({type(exc).__name__})"
            ) from None
    return user_credentials.Credentials(
        token=None,
        refresh_token=connection.secret("refresh_token"),
        client_id=connection.secret("client_id"),
        client_secret=connection.secret("client_secret"),
        token_uri=token_uri,
        scopes=list(scopes),
    )


class GoogleAuth(httpx.Auth):
    """Bearer tokens from google-auth credentials, shared by the connection's threads."""

    def __init__(self, credentials: Any, label: str):
        self.credentials = credentials
        self.label = label
        self.refreshes = 0
        self._lock = threading.Lock()
        self._google = GoogleRequest()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        used = self._token(stale=None)
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code == 401:  # expired or revoked early: one refresh, one resend
            request.headers["Authorization"] = f"Bearer {self._token(stale=used)}"
            yield request

    def _token(self, stale: str | None) -> str:
        """A valid token: the current one, unless it is missing, expired or `stale` (the one
        a 401 just rejected, unless another thread already replaced it)."""
        with self._lock:
            current = self.credentials.token
            if current and self.credentials.valid and current != stale:
                return current
            self._refresh()
            return self.credentials.token

    def _refresh(self) -> None:
        try:
            self.credentials.refresh(self._google)
        except google_errors.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise TransientError(f"{self.label}: Google's token endpoint failed") from None
            raise SourceAuthError(
                f"{self.label}: Google refused the credentials ({_grant_error(exc)}); check "
                "the refresh token or service account key the registry names"
            ) from None
        except google_errors.TransportError:
            raise TransientError(f"{self.label}: Google's token endpoint did not answer") from None
        self.refreshes += 1


def _grant_error(exc: google_errors.RefreshError) -> str:
    """The OAuth error code (invalid_grant, ...) without anything the body may echo."""
    details = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(details, dict) and isinstance(details.get("error"), str):
        return details["error"][:64]
    return "refresh failed"
