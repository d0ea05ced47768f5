"""The sandbox service account's RSA key: generated when first used, never stored.

`info(token_uri)` is the JSON key file Google hands out (what GMAIL_SERVICE_ACCOUNT_JSON holds
in production); `verify` checks a JWT bearer assertion as Google's token endpoint does: RS256
signature by this key, the audience (the token URI), issuer and expiry.
"""

from __future__ import annotations

import functools
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

SERVICE_ACCOUNT_EMAIL = "sync-pipelines@sandbox-project.iam.gserviceaccount.com"
KEY_ID = "sandbox-key-1"
# The `aud` Google documents for a service account's assertion, whatever URL it is posted to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


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
