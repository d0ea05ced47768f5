"""Remove credentials from text before it leaves for Slack.

Error messages can quote a request, a URL or a config value; an alert channel is read by more
people than the run logs. Known token shapes and `key=value` pairs are redacted by pattern, and
the values of secret-looking environment variables (where connection credentials live) are
redacted literally, whatever their shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_MIN_LITERAL = 8  # shorter env values ("true", "1") would redact ordinary words

_SECRET_ENV_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|CREDENTIAL", re.I)
_PATTERNS: tuple[tuple[re.Pattern, str], ...] = (
    # Slack (xoxb-, xoxp-, xoxa-, xoxr-, ...), Slack app-level, OpenAI sk-/sk-proj-, Pinecone.
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), REDACTED),
    (re.compile(r"\bpcsk_[A-Za-z0-9_]+"), REDACTED),
    # Authorization header values.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I), rf"\1 {REDACTED}"),
    # key=value, key: value, "key": "value" for credential-like keys.
    (
        re.compile(
            r"""(?ix)
            \b([\w-]*?(?:api[_-]?key|token|secret|password|passwd|pwd|authorization))
            (["']?\s*[=:]\s*["']?)
            (?!\[redacted\]|(?:Bearer|Basic)\s)[^\s"'&,;)}\]]+
            """
        ),
        rf"\1\2{REDACTED}",
    ),
    # user:password@host in URLs.
    (re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@"), f"{REDACTED}@"),
)


def secret_env_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a credential."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if _SECRET_ENV_NAME.search(k) and len(v) >= _MIN_LITERAL]


def scrub_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """`text` with credential patterns and every `known` secret value replaced by [redacted]."""
    for value in sorted({k for k in known if k and len(k) >= _MIN_LITERAL}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
