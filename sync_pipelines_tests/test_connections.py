import pytest

from sync_pipelines.connections import CredentialError, RegistryError, load_registry


def write(tmp_path, text):
    path = tmp_path / "connections.yaml"
    path.write_text(text)
    return str(path)


def test_registry_file_parses_connections(tmp_path, monkeypatch):
    path = write(
        tmp_path,
        """
connections:
  - id: acme
    source: slack
    credentials: {token: SLACK_TOKEN_ACME}
    base_url: http://127.0.0.1:9/api/
    options: {channels: [general]}
  - id: old
    source: slack
    active: false
    credentials: {token: SLACK_TOKEN_OLD}
""",
    )
    registry = load_registry(path)
    assert registry.problems == ()
    acme, old = registry.connections
    assert (acme.id, acme.active, acme.base_url) == ("acme", True, "http://127.0.0.1:9/api/")
    assert acme.options == {"channels": ["general"]}
    assert old.active is False
    monkeypatch.setenv("SLACK_TOKEN_ACME", "xoxb-1")
    assert acme.secret("token") == "xoxb-1"


def test_inline_secret_is_rejected(tmp_path):
    path = write(
        tmp_path,
        "connections:\n  - {id: acme, source: slack, credentials: {token: xoxb-123-abc}}\n",
    )
    (problem,) = load_registry(path).problems
    assert "must name an environment variable" in problem.reason
    assert "xoxb" not in str(problem)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{id: Acme!, source: slack}", "must be lower-case"),
        ("{id: acme, source: teams}", "unknown source 'teams'"),
        ("{id: acme, source: slack, active: maybe}", "active must be true or false"),
        ("{id: acme, source: slack, colour: red}", "unknown keys"),
        ("{id: acme, source: slack, base_url: ftp://x}", "base_url must be an http"),
    ],
)
def test_invalid_entries_name_the_problem(tmp_path, entry, message):
    path = write(tmp_path, f"connections:\n  - {{id: ok, source: slack}}\n  - {entry}\n")
    registry = load_registry(path)
    assert [c.id for c in registry.connections] == ["ok"]
    (problem,) = registry.problems
    assert message in problem.reason and "connections[1]" in problem.where


def test_duplicate_ids_rejected(tmp_path):
    path = write(tmp_path, "connections:\n  - {id: a, source: slack}\n  - {id: a, source: slack}\n")
    registry = load_registry(path)
    assert registry.connections == ()  # ambiguous: neither is used
    (problem,) = registry.problems
    assert "duplicate slack connection id 'a'" in problem.reason
    with pytest.raises(RegistryError, match="duplicate"):
        registry.get("slack", "a")


def test_missing_secret_names_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("SLACK_TOKEN_X", raising=False)
    path = write(
        tmp_path, "connections:\n  - {id: x, source: slack, credentials: {token: SLACK_TOKEN_X}}\n"
    )
    (conn,) = load_registry(path).connections
    with pytest.raises(CredentialError, match="SLACK_TOKEN_X"):
        conn.secret("token")


def test_default_connection_from_standard_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNC_CONNECTIONS_FILE", raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    assert load_registry().connections == ()
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-default")
    monkeypatch.setenv("SLACK_BASE_URL", "http://127.0.0.1:1/api/")
    (conn,) = load_registry().connections
    assert (conn.id, conn.source, conn.base_url) == ("default", "slack", "http://127.0.0.1:1/api/")
    assert conn.secret("token") == "xoxb-default"


def test_get_explains_inactive_and_unknown(tmp_path):
    path = write(
        tmp_path,
        "connections:\n  - {id: live, source: slack}\n  - {id: paused, source: slack, active: false}\n",
    )
    registry = load_registry(path)
    assert registry.get("slack", "live").id == "live"
    with pytest.raises(RegistryError, match="'paused' is inactive"):
        registry.get("slack", "paused")
    with pytest.raises(
        RegistryError,
        match=r"no slack connection 'nope'.*known slack connections: \['live', 'paused'\]",
    ):
        registry.get("slack", "nope")


def test_explicit_missing_registry_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        load_registry(str(tmp_path / "missing.yaml"))


def test_yaml_boolean_id_gets_a_hint(tmp_path):
    path = write(tmp_path, "connections:\n  - {id: on, source: slack}\n")
    (problem,) = load_registry(path).problems
    assert "YAML boolean; quote it" in problem.reason
