"""The resource base every source's resource extends: the settings each of them repeats.

A source's resource says, as class variables, its environment prefix (`ACME` ->
`ACME_BASE_URL`, `ACME_RATE_PER_S`), the vendor's default URL, its documented pace and its
page-size limits; the fields below are the deployment's settings. Everything that comes from
the environment is read when a client is built, not when the resource is, so configuring one
field in a run's config (the launchpad) never drops what the environment set:

    base URL:  the connection's base_url > this resource's base_url > <PREFIX>_BASE_URL >
               the vendor's default (none: the connection must name its site)
    pacing:    this resource's rate_per_s > <PREFIX>_RATE_PER_S > the documented pace
    page size: this resource's page_size > the source's default, within 1..its maximum
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.http import HttpSourceClient


class SourceResourceBase(ConfigurableResource):
    """How to talk to one vendor; credentials and options come from each connection."""

    ENV_PREFIX: ClassVar[str]  # the source's name in upper case
    DEFAULT_BASE_URL: ClassVar[str | None] = None  # None: every site has its own URL
    BASE_URL_HINT: ClassVar[str] = ""  # e.g. "https://<site>.atlassian.net", for errors
    DOCUMENTED_RATE_PER_S: ClassVar[float] = 0.0  # requests/s per connection; 0: unpaced
    DEFAULT_PAGE_SIZE: ClassVar[int] = 100
    MAX_PAGE_SIZE: ClassVar[int] = 100

    base_url: str | None = Field(
        default=None,
        description="API URL for connections without their own base_url; unset: "
        "<SOURCE>_BASE_URL, else the vendor's public API.",
    )
    timeout_s: float = Field(default=30.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=6, description="Attempts per call for 5xx/network errors.")
    max_rate_limit_waits: int = Field(
        default=10, description="429s waited out (their Retry-After) per call."
    )
    rate_per_s: float | None = Field(
        default=None,
        description="Client-side pacing shared by a connection's calls (0 = off); unset: "
        "<SOURCE>_RATE_PER_S, else the vendor's documented rate.",
    )
    page_size: int | None = Field(
        default=None, description="Records per page; unset: the source's default."
    )

    @classmethod
    def base_url_env(cls) -> str:
        return f"{cls.ENV_PREFIX}_BASE_URL"

    @classmethod
    def rate_env(cls) -> str:
        return f"{cls.ENV_PREFIX}_RATE_PER_S"

    def base_url_for(self, connection: Connection) -> str:
        """The URL a connection's client talks to (precedence in the module docstring)."""
        url = (
            connection.base_url
            or self.base_url
            or os.environ.get(self.base_url_env())
            or self.DEFAULT_BASE_URL
        )
        if not url:
            example = f", e.g. {self.BASE_URL_HINT}" if self.BASE_URL_HINT else ""
            raise ValueError(
                f"{self.ENV_PREFIX.lower()} connection '{connection.id}' has no API URL: set "
                f"base_url on the connection in the registry, {self.base_url_env()} or the "
                f"resource's base_url{example}"
            )
        return url

    def pace(self) -> float:
        """Requests per second per connection (0 = no client-side pacing)."""
        if self.rate_per_s is not None:
            rate, where = self.rate_per_s, f"{type(self).__name__}.rate_per_s"
        elif os.environ.get(self.rate_env()):
            where = self.rate_env()
            try:
                rate = float(os.environ[where])
            except ValueError:
                raise ValueError(
                    f"{where} must be a number of requests per second (0 = no pacing), "
                    f"got {os.environ[where]!r}"
                ) from None
        else:
            return self.DOCUMENTED_RATE_PER_S
        if rate < 0:
            raise ValueError(f"{where} must be >= 0 (0 = no pacing), got {rate}")
        return rate

    def pages(self) -> int:
        """The page size, checked against what the vendor allows."""
        size = self.DEFAULT_PAGE_SIZE if self.page_size is None else self.page_size
        if not 1 <= size <= self.MAX_PAGE_SIZE:
            raise ValueError(
                f"{type(self).__name__}.page_size must be between 1 and {self.MAX_PAGE_SIZE}, "
                f"got {size}"
            )
        return size

    def checked_timeout(self) -> float:
        if self.timeout_s <= 0:
            raise ValueError(f"{type(self).__name__}.timeout_s must be > 0, got {self.timeout_s}")
        return self.timeout_s

    def http_client(
        self,
        connection: Connection,
        *,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        body_error: Callable[[Any], None] | None = None,
        **settings: Any,
    ) -> HttpSourceClient:
        """The shared HTTP client for a REST/GraphQL source's connection, with this
        resource's URL, timeout, pacing and retry budget (`settings` override any of them)."""
        return HttpSourceClient(
            source=self.ENV_PREFIX.lower(),
            connection_id=connection.id,
            base_url=settings.pop("base_url", None) or self.base_url_for(connection),
            headers=headers,
            auth=auth,
            body_error=body_error,
            **{
                "timeout_s": self.checked_timeout(),
                "rate_per_s": self.pace(),
                "max_attempts": self.max_attempts,
                "max_rate_limit_waits": self.max_rate_limit_waits,
                **settings,
            },
        )
