"""The connection registry: which accounts of which sources are synced, and with what credentials.

A connection is one account of one source (a Slack workspace, a Jira site...). The registry is a
YAML file; credentials appear in it only as environment-variable *names*, so the file can be
committed and secrets stay in the environment. Without a file, each source gets a single
`default` connection when its standard environment variables are set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_REGISTRY_PATH = "connections.yaml"
REGISTRY_PATH_ENV = "SYNC_CONNECTIONS_FILE"

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_CONNECTION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# source -> (credential field -> standard env var, base-url env var) for the implicit `default`
# connection; the first credential listed must be set for the connection to exist.
STANDARD_ENV: dict[str, tuple[dict[str, str], str]] = {
    "slack": ({"token": "SLACK_BOT_TOKEN"}, "SLACK_BASE_URL"),
    "jira": ({"api_token": "JIRA_API_TOKEN", "email": "JIRA_EMAIL"}, "JIRA_BASE_URL"),
    "notion": ({"token": "NOTION_TOKEN"}, "NOTION_BASE_URL"),
    "fireflies": ({"api_key": "FIREFLIES_API_KEY"}, "FIREFLIES_BASE_URL"),
    "tempo": ({"token": "TEMPO_API_TOKEN"}, "TEMPO_BASE_URL"),
}


class RegistryError(ValueError):
    """The registry file or a connection in it is invalid; the message names what and where."""


class CredentialError(RuntimeError):
    """A credential environment variable named by a connection is not set."""


@dataclass(frozen=True)
class Connection:
    id: str
    source: str
    active: bool = True
    credentials: dict[str, str] = field(default_factory=dict)  # field -> env var NAME
    options: dict = field(default_factory=dict)
    base_url: str | None = None

    def secret(self, name: str) -> str:
        """The value of credential `name`, read from the environment variable the registry names."""
        env_name = self.credentials.get(name)
        if env_name is None:
            raise CredentialError(
                f"{self.source} connection '{self.id}' has no '{name}' credential in the registry"
            )
        value = os.environ.get(env_name, "")
        if not value:
            raise CredentialError(
                f"{self.source} connection '{self.id}': environment variable {env_name} "
                f"(credential '{name}') is not set"
            )
        return value

    def __hash__(self) -> int:
        return hash((self.source, self.id))


def registry_path() -> Path:
    return Path(os.environ.get(REGISTRY_PATH_ENV, DEFAULT_REGISTRY_PATH))


def _parse_connection(raw: object, where: str) -> Connection:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: a connection must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - {"id", "source", "active", "credentials", "options", "base_url"}
    if unknown:
        raise RegistryError(f"{where}: unknown keys {sorted(unknown)}")
    conn_id, source = raw.get("id"), raw.get("source")
    if isinstance(conn_id, bool):
        raise RegistryError(f"{where}: id {conn_id!r} was read as a YAML boolean; quote it")
    if not isinstance(conn_id, str) or not _CONNECTION_ID.match(conn_id):
        raise RegistryError(
            f"{where}: id {conn_id!r} must be lower-case letters, digits, '-' or '_' (max 63)"
        )
    if source not in STANDARD_ENV:
        raise RegistryError(
            f"{where} ({conn_id}): unknown source {source!r}; known: {sorted(STANDARD_ENV)}"
        )
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise RegistryError(f"{where} ({conn_id}): active must be true or false, got {active!r}")
    credentials = raw.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise RegistryError(f"{where} ({conn_id}): credentials must map names to env var names")
    for name, env_name in credentials.items():
        if not isinstance(env_name, str) or not _ENV_NAME.match(env_name):
            raise RegistryError(
                f"{where} ({conn_id}): credential '{name}' must name an environment variable "
                "(e.g. SLACK_BOT_TOKEN_ACME), not hold a secret inline"
            )
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise RegistryError(f"{where} ({conn_id}): options must be a mapping")
    base_url = raw.get("base_url")
    if base_url is not None and not (
        isinstance(base_url, str) and base_url.startswith(("http://", "https://"))
    ):
        raise RegistryError(f"{where} ({conn_id}): base_url must be an http(s) URL")
    return Connection(conn_id, source, active, dict(credentials), dict(options), base_url)


def load_registry_file(path: Path) -> list[Connection]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("connections", []), list):
        raise RegistryError(f"{path}: expected a mapping with a 'connections' list")
    connections = [
        _parse_connection(raw, f"{path}: connections[{i}]")
        for i, raw in enumerate(data.get("connections") or [])
    ]
    seen: set[tuple[str, str]] = set()
    for c in connections:
        if (c.source, c.id) in seen:
            raise RegistryError(f"{path}: duplicate {c.source} connection id '{c.id}'")
        seen.add((c.source, c.id))
    return connections


def default_connections() -> list[Connection]:
    """One `default` connection per source whose standard env vars are set (no registry file)."""
    found = []
    for source, (credentials, base_url_env) in STANDARD_ENV.items():
        first_env = next(iter(credentials.values()))
        if os.environ.get(first_env):
            found.append(
                Connection(
                    "default",
                    source,
                    credentials=dict(credentials),
                    base_url=os.environ.get(base_url_env) or None,
                )
            )
    return found


def load_connections(path: str | os.PathLike | None = None) -> list[Connection]:
    """All connections (active or not): from the registry file if it exists, else the defaults."""
    resolved = Path(path) if path else registry_path()
    if resolved.exists():
        return load_registry_file(resolved)
    if path and str(path) != DEFAULT_REGISTRY_PATH:
        raise RegistryError(f"connection registry {resolved} does not exist")
    return default_connections()


def find_connection(source: str, connection_id: str, path: str | None = None) -> Connection:
    """The connection a partition key names, or a clear error saying why it cannot run."""
    connections = load_connections(path)
    for c in connections:
        if c.source == source and c.id == connection_id:
            if not c.active:
                raise RegistryError(
                    f"{source} connection '{connection_id}' is inactive in the registry; "
                    "activate it to sync"
                )
            return c
    known = sorted(c.id for c in connections if c.source == source)
    raise RegistryError(
        f"no {source} connection '{connection_id}' in the registry "
        f"({path or registry_path()}); known {source} connections: {known or 'none'}. "
        + ("" if known else f"Set {next(iter(STANDARD_ENV[source][0].values()))} or add one.")
    )
