"""Google credentials for one mailbox (the shared google_auth module, with Gmail's scope).

Two ways to reach a mailbox, chosen by the credentials the connection names (environment
variable NAMES in the registry, never the secrets):

- OAuth for one user: `refresh_token`, `client_id`, `client_secret` (an OAuth client of the
  Google Cloud project and the refresh token the mailbox owner granted it, scope
  gmail.readonly).
- A service account with domain-wide delegation impersonating the mailbox:
  `service_account_json` (the JSON key) and the connection option `mailbox` (the address to
  impersonate; the Workspace admin grants the account's client id the gmail.readonly scope).

The token endpoint is Google's unless the connection option `token_uri`, the resource's
`token_uri` or GMAIL_TOKEN_URI points elsewhere (the sandbox's). Refreshes, the one resend
after a 401 and the fail-fast rule on refused grants are google_auth's.
"""

from __future__ import annotations

from typing import Any

from sync_pipelines.connections import Connection
from sync_pipelines.google_auth import (
    GOOGLE_TOKEN_URI,
    SERVICE_ACCOUNT,
    GoogleAuth,
    google_credentials,
    uses_service_account,
)

SCOPES = ("https://www.googleapis.com/auth/gmail.readonly",)

__all__ = ["GOOGLE_TOKEN_URI", "SCOPES", "SERVICE_ACCOUNT", "GoogleAuth", "credentials_for"]


def credentials_for(connection: Connection, token_uri: str, mailbox: str | None) -> Any:
    """google-auth credentials for the mailbox, not yet refreshed; CredentialError when a
    named environment variable is unset."""
    label = f"gmail connection '{connection.id}'"
    if uses_service_account(connection) and not mailbox:
        raise ValueError(
            f"{label}: a service account needs the option 'mailbox' (the address it impersonates)"
        )
    subject = mailbox if uses_service_account(connection) else None
    return google_credentials(connection, label, token_uri, SCOPES, subject=subject)
