"""Connection options: the model each source declares its options with, and validators several
sources share (errors name the source and the option)."""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

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


class OptionsModel(BaseModel):
    """A source's connection options as one validated model: unknown options are refused
    and every error names the source and the option (`from_connection`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_connection(cls, options: dict | None, source: str = "source") -> Self:
        try:
            return cls.model_validate(options or {})
        except ValidationError as exc:
            raise ValueError(options_error(exc, source, sorted(cls.model_fields))) from None


def options_error(exc: ValidationError, source: str, known: list[str]) -> str:
    """`slack option 'lookback_days': Input should be greater than or equal to 0`, one per
    problem, joined."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "options"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown {source} option '{name}'; known: {', '.join(known)}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{source} option '{name}': {message}")
    return "; ".join(problems)
