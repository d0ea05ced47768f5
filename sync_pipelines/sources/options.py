"""Connection options: the model each source declares its options with, and the option types
several sources share (errors name the source and the option)."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")


def _project_keys(keys: object) -> tuple[str, ...]:
    """Project keys such as [SUBS, CORE]; null reads as none."""
    if keys is None:
        return ()
    valid = isinstance(keys, (list, tuple)) and all(
        isinstance(k, str) and PROJECT_KEY.match(k) for k in keys
    )
    if not valid:
        raise ValueError("must be a list of project keys, e.g. [SUBS]")
    return tuple(keys)


# Option types several sources share, for OptionsModel fields.
ProjectKeys = Annotated[tuple[str, ...], BeforeValidator(_project_keys)]
Minutes = Annotated[float, Field(ge=0, strict=True)]


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
    """`acme option 'lookback_days': Input should be greater than or equal to 0`, one per
    problem, joined."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "options"
        if error["type"] == "extra_forbidden":
            names = ", ".join(known) or "none"
            problems.append(f"unknown {source} option '{name}'; known: {names}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{source} option '{name}': {message}")
    return "; ".join(problems)
