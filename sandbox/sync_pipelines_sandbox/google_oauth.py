"""Google's OAuth 2.0 token endpoint and a service account key, for every Google API emulator.

`ServiceAccountKey` is generated when first used (one per process), never stored: `info(token_uri)` is the JSON
key file Google hands out, `verify` checks a JWT bearer assertion as Google's token endpoint
does (RS256 signature by this key, the audience, the issuer, expiry). `GoogleOAuth` is one
emulator's token endpoint (`POST /token`) and its issued access tokens: both grants Google
takes, refresh_token (client id and secret checked) and the service account's signed
assertion (`sub`, when present, must be a user the emulator accepts; the scope must be one of
the API's), with OAuth's errors {"error", "error_description"}.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse

SERVICE_ACCOUNT_EMAIL = "sync-pipelines@sandbox-project.iam.gserviceaccount.com"
KEY_ID = "sandbox-key-1"
# The `aud` Google documents for a service account's assertion, whatever URL it is posted to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class ServiceAccountKey:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    @functools.cached_property
    def _private(self) -> rsa.RSAPrivateKey:
        with self._lock:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def info(self, token_uri: str) -> dict:
        """The service account's JSON key, pointed at `token_uri`."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "sandbox-project",
            "private_key_id": KEY_ID,
            "private_key": pem,
            "client_email": SERVICE_ACCOUNT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        }

    def verify(self, assertion: str, audience: str) -> dict:
        """The assertion's claims; ValueError when it is not one this key signed for us."""
        if not assertion:
            raise ValueError("no assertion")
        try:
            claims = jwt.decode(
                assertion,
                certs={KEY_ID: self.public_pem},
                audience=[audience, GOOGLE_TOKEN_AUDIENCE],
            )
        except Exception as exc:  # noqa: BLE001 - google-auth raises ValueError or its own MalformedError
            raise ValueError(str(exc)) from None
        if claims.get("iss") != SERVICE_ACCOUNT_EMAIL:
            raise ValueError(f"unknown issuer {claims.get('iss')!r}")
        return claims


# One key per process, shared by every Google emulator: a contract entry can name the JSON key
# before any sandbox exists (the key's token_uri is overridden by the client's own).
SANDBOX_KEY = ServiceAccountKey()


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status)


class GoogleOAuth:
    """One emulator's token endpoint and the access tokens it issued (token -> identity).

    scopes: the API's scopes (an assertion must ask for one). clients: OAuth client id ->
    secret. refresh_tokens: refresh token -> the user it acts for. subjects: which users a
    delegated service account may act as; an assertion without `sub` acts as the service
    account itself (its email), unless `subjects(None)` is false."""

    def __init__(
        self,
        *,
        scopes: set[str],
        clients: Mapping[str, str],
        refresh_tokens: Mapping[str, str],
        subjects: Callable[[str | None], bool],
    ):
        self.scopes = set(scopes)
        self.clients = dict(clients)
        self.refresh_tokens = dict(refresh_tokens)
        self.subjects = subjects
        self.key = SANDBOX_KEY  # generated when first used
        self.access_tokens: dict[str, str] = {}  # token -> identity (user or service account)
        self.token_requests: list[str] = []  # grant types, in order
        self._serial = itertools.count(1)

    def issue(self, identity: str) -> str:
        token = f"ya29.sandbox-{next(self._serial)}"
        self.access_tokens[token] = identity
        return token

    def revoke_access_tokens(self) -> None:
        """Every access token expires at once (a refresh is needed)."""
        self.access_tokens.clear()

    def identity(self, authorization: str) -> str | None:
        """Who a request's `Authorization: Bearer <token>` acts for, None if not a token."""
        word, _, token = authorization.partition(" ")
        return self.access_tokens.get(token.strip()) if word.lower() == "bearer" else None

    async def endpoint(self, request: Request) -> JSONResponse:
        # application/x-www-form-urlencoded, read without python-multipart
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = str(form.get("grant_type") or "")
        self.token_requests.append(grant)
        if grant == "refresh_token":
            if self.clients.get(str(form.get("client_id"))) != form.get("client_secret"):
                return oauth_error(401, "invalid_client", "The OAuth client was not found.")
            identity = self.refresh_tokens.get(str(form.get("refresh_token") or ""))
            if identity is None:
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            scope = " ".join(sorted(self.scopes))
        elif grant == JWT_GRANT:
            audience = str(request.url.replace(query=""))
            try:
                claims = self.key.verify(str(form.get("assertion") or ""), audience)
            except ValueError as exc:
                return oauth_error(400, "invalid_grant", f"Invalid JWT: {exc}")
            subject = claims.get("sub")
            scope = str(claims.get("scope") or "")
            if not self.subjects(subject):
                return oauth_error(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or "
                    "client not authorized for any of the scopes requested.",
                )
            if not set(scope.split()) & self.scopes:
                return oauth_error(400, "invalid_scope", "No scope of this API was requested.")
            identity = subject or SERVICE_ACCOUNT_EMAIL
        else:
            return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        return JSONResponse(
            {
                "access_token": self.issue(identity),
                "expires_in": 3599,
                "scope": scope,
                "token_type": "Bearer",
            }
        )
