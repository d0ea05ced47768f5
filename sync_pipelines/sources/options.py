"""Validators for connection options that several sources share (errors name the option)."""

from __future__ import annotations

import re

PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")


def project_keys(options: dict, name: str, source: str) -> tuple[str, ...]:
    """A list of project keys such as [SUBS, CORE] (empty when the option is absent)."""
    keys = options.get(name) or ()
    if isinstance(keys, str) or not all(isinstance(k, str) and PROJECT_KEY.match(k) for k in keys):
        raise ValueError(f"{source} option '{name}' must be a list of project keys, e.g. [SUBS]")
    return tuple(keys)


def minutes(options: dict, name: str, source: str, default: float) -> float:
    """A non-negative number of minutes."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{source} option '{name}' must be a number >= 0")
    return float(value)
