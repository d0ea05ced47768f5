"""The connection registry: which accounts of which sources are synced, and with what credentials.

A connection is one account of one source (a workspace, a site...). The registry is a
YAML file; credentials appear in it only as environment-variable *names*, so the file can be
committed and secrets stay in the environment. Without a file, each source gets a single
`default` connection when its standard environment variables are set.

Loading validates each entry on its own: a `Registry` holds the valid connections and one
`EntryProblem` per invalid entry, so one bad entry never stops the others. Only a file that
cannot be used at all (unreadable, not YAML, empty, missing at an explicit path) raises. Error
texts never quote the file: a pasted token would travel into run storage, logs and alerts.
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
# A word of a name printable in errors: plain upper-case letters, a number only as a suffix
# (ACME2) or in a short word (K8S, O365). Tokens mix letters and digits throughout.
_PRINTABLE_NAME_WORD = re.compile(r"^(?:[A-Z]{1,16}[0-9]{0,4}|[A-Z0-9]{1,4})$")
_MAX_PRINTABLE_NAME = 64
_CONNECTION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_ENTRY_KEYS = {"id", "source", "active", "credentials", "options", "base_url"}
# A quoted part of a YAML error (an alias, a tag) is file content: long ones are masked.
_YAML_QUOTED = re.compile(r"""'[^']{4,}'|"[^"]{4,}\"""")


def standard_env() -> dict[str, tuple[dict[str, str], str]]:
    """source -> (credential field -> standard env var, base-url env var) for the implicit
    `default` connection; the first credential listed must be set for it to exist. Read from
    the source declarations when asked: the sources import this module, so not at import."""
    from sync_pipelines.sources.registry import declarations

    return {d.name: (dict(d.credentials_env), d.base_url_env) for d in declarations()}


class RegistryError(ValueError):
    """The registry, or the entry a run needs, is unusable; the message names what and where."""


class CredentialError(RuntimeError):
    """A credential environment variable named by a connection is not set."""


def printable_env_name(text: str) -> bool:
    """Whether `text` is safe to show as an environment-variable name in an error.

    The registry only requires UPPER_SNAKE_CASE, which an upper-case token also satisfies;
    a name shown in errors must also be made of plain words and not be overly long."""
    words = [w for w in text.split("_") if w]
    return (
        len(text) <= _MAX_PRINTABLE_NAME
        and bool(words)
        and all(_PRINTABLE_NAME_WORD.match(w) for w in words)
    )


@dataclass(frozen=True)
class Connection:
    id: str
    source: str
    active: bool = True
    # field -> env var NAME; kept out of repr in case a secret was pasted in place of a name.
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
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
        if value:
            return value
        if printable_env_name(env_name):
            raise CredentialError(
                f"{self.source} connection '{self.id}': environment variable {env_name} "
                f"(credential '{name}') is not set"
            )
        raise CredentialError(
            f"{self.source} connection '{self.id}': the credential field '{name}' names no set "
            "environment variable"
        )

    def __hash__(self) -> int:
        return hash((self.source, self.id))


@dataclass(frozen=True)
class EntryProblem:
    """An invalid registry entry, and which connections it may stand for.

    `source`/`connection_id` are None when the entry does not say them readably: the entry may
    then be any source's, or any connection's, and is treated so (its partitions are kept)."""

    where: str
    reason: str
    source: str | None = None
    connection_id: str | None = None

    def affects(self, source: str, connection_id: str) -> bool:
        return self.source in (None, source) and self.connection_id in (None, connection_id)

    @property
    def key(self) -> str:
        """Stable across edits elsewhere in the file (unlike the entry's position)."""
        if self.connection_id is None:
            return f"{self.where}: {self.reason}"
        return f"{self.source or '?'}/{self.connection_id}: {self.reason}"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Registry:
    """The valid connections of a registry and the problems of its invalid entries."""

    origin: str  # the file read, or a note saying the defaults came from the environment
    connections: tuple[Connection, ...]
    problems: tuple[EntryProblem, ...] = ()
    from_file: bool = True

    def active(self, source: str) -> list[Connection]:
        return [c for c in self.connections if c.source == source and c.active]

    def get(self, source: str, connection_id: str) -> Connection:
        """The connection a partition key names, or a clear error saying why it cannot run."""
        for c in self.connections:
            if c.source == source and c.id == connection_id:
                if not c.active:
                    raise RegistryError(
                        f"{source} connection '{connection_id}' is inactive in the registry; "
                        "activate it to sync"
                    )
                return c
        invalid = [p for p in self.problems if p.affects(source, connection_id)]
        if invalid:
            raise RegistryError(
                f"no valid {source} connection '{connection_id}' in {self.origin}; invalid "
                "entries that may be it: " + "; ".join(str(p) for p in invalid)
            )
        known = sorted(c.id for c in self.connections if c.source == source)
        raise RegistryError(
            f"no {source} connection '{connection_id}' in {self.origin}; known {source} "
            f"connections: {known or 'none'}. "
            + ("" if known else f"Set {next(iter(standard_env()[source][0].values()))} or add one.")
        )

    def may_remove(self, source: str, connection_id: str) -> bool:
        """Whether a connection that is not active any more may lose its partition: only when
        a registry file with valid entries says so, and no invalid entry may be that one."""
        return (
            self.from_file
            and bool(self.connections)
            and not any(p.affects(source, connection_id) for p in self.problems)
        )


def registry_path(path: str | os.PathLike | None = None) -> Path:
    """`path`, else `$SYNC_CONNECTIONS_FILE`, else ./connections.yaml; an empty path is an error."""
    raw = os.environ.get(REGISTRY_PATH_ENV, DEFAULT_REGISTRY_PATH) if path is None else path
    if not os.fspath(raw).strip():
        raise RegistryError(
            f"the connection registry path is empty (is {REGISTRY_PATH_ENV} set to ''?); "
            "set it to the registry file or unset it"
        )
    return Path(raw)


def _yaml_error(exc: yaml.YAMLError) -> str:
    """Where the YAML breaks and what kind of break it is, without the text around it."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML ({type(exc).__name__})"

    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    def masked(text: str) -> str:
        return _YAML_QUOTED.sub("'…'", text)

    text = f"not valid YAML at {at(exc.problem_mark)}: {masked(exc.problem or 'syntax error')}"
    if exc.context and exc.context_mark is not None:
        text += f" ({masked(exc.context)} at {at(exc.context_mark)})"
    return text


def _claimed(raw: object) -> tuple[str | None, str | None]:
    """The (source, id) an entry says it is, where readable, even if the entry is invalid."""
    if not isinstance(raw, dict):
        return None, None
    source, conn_id = raw.get("source"), raw.get("id")
    return (
        source if isinstance(source, str) and source in standard_env() else None,
        conn_id if isinstance(conn_id, str) and _CONNECTION_ID.match(conn_id) else None,
    )


def _field_label(name: object) -> str:
    return f"'{name}'" if isinstance(name, str) and _FIELD_NAME.match(name) else "(unnamed)"


def _parse_connection(raw: object) -> Connection:
    """One entry as a Connection; RegistryError says what is wrong, never a credential value."""
    if not isinstance(raw, dict):
        raise RegistryError(f"a connection must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise RegistryError(f"unknown keys {sorted(map(str, unknown))}")
    conn_id, source = raw.get("id"), raw.get("source")
    if isinstance(conn_id, bool):
        raise RegistryError(f"id {conn_id!r} was read as a YAML boolean; quote it")
    if not isinstance(conn_id, str) or not _CONNECTION_ID.match(conn_id):
        raise RegistryError(
            f"id {conn_id!r} must be lower-case letters, digits, '-' or '_' (max 63)"
        )
    known = standard_env()
    if not isinstance(source, str) or source not in known:
        raise RegistryError(f"unknown source {source!r}; known: {sorted(known)}")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise RegistryError(f"active must be true or false, got {active!r}")
    credentials = raw.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise RegistryError("credentials must map credential names to environment variable names")
    for name, env_name in credentials.items():
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise RegistryError(f"credential field {_field_label(name)} is not a plain name")
        if not isinstance(env_name, str) or not _ENV_NAME.match(env_name):
            raise RegistryError(
                f"credential '{name}' must name an environment variable "
                "(e.g. CRM_API_TOKEN_ACME), not hold a secret inline"
            )
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise RegistryError("options must be a mapping")
    base_url = raw.get("base_url")
    if base_url is not None and not (
        isinstance(base_url, str) and base_url.startswith(("http://", "https://"))
    ):
        raise RegistryError("base_url must be an http(s) URL")
    return Connection(conn_id, source, active, dict(credentials), dict(options), base_url)


def _entries(path: Path) -> list:
    """The file's list of entries; RegistryError when the file as a whole is unusable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RegistryError(f"{path}: cannot read the connection registry ({reason})") from None
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: {_yaml_error(exc)}") from None
    if data is not None and not (
        isinstance(data, dict) and isinstance(data.get("connections") or [], list)
    ):
        raise RegistryError(f"{path}: expected a mapping with a 'connections' list")
    entries = (data or {}).get("connections") or []
    if not entries:
        raise RegistryError(
            f"{path}: the connection registry lists no connections (to stop a connection, "
            "set `active: false` on it)"
        )
    return entries


def _read_file(path: Path) -> Registry:
    connections: list[Connection] = []
    problems: list[EntryProblem] = []
    for i, raw in enumerate(_entries(path)):
        source, conn_id = _claimed(raw)
        where = f"{path}: connections[{i}]" + (f" ({conn_id})" if conn_id else "")
        try:
            connections.append(_parse_connection(raw))
        except RegistryError as exc:
            problems.append(EntryProblem(where, str(exc), source, conn_id))
    by_key: dict[tuple[str, str], list[Connection]] = {}
    for c in connections:
        by_key.setdefault((c.source, c.id), []).append(c)
    for (source, conn_id), same in by_key.items():
        if len(same) > 1:
            problems.append(
                EntryProblem(
                    f"{path} ({conn_id})",
                    f"duplicate {source} connection id '{conn_id}' ({len(same)} entries)",
                    source,
                    conn_id,
                )
            )
    valid = [c for c in connections if len(by_key[(c.source, c.id)]) == 1]
    return Registry(str(path), tuple(valid), tuple(problems))


def default_connections() -> list[Connection]:
    """One `default` connection per source whose standard env vars are set (no registry file)."""
    found = []
    for source, (credentials, base_url_env) in standard_env().items():
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


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """The registry file if it exists, else (for the implicit default path only) the defaults."""
    resolved = registry_path(path)
    if resolved.exists():
        return _read_file(resolved)
    if str(resolved) != DEFAULT_REGISTRY_PATH:
        raise RegistryError(f"connection registry {resolved} does not exist")
    return Registry(
        f"the standard environment variables (no {resolved.resolve()})",
        tuple(default_connections()),
        from_file=False,
    )
