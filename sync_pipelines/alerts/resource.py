"""Where alerts go: a Slack channel through slack_sdk, and links back to the Dagster UI."""

from __future__ import annotations

import os
from typing import Optional
from urllib.parse import quote

from dagster import ConfigurableResource, EnvVar
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from sync_pipelines.alerts.scrub import scrub_secrets, secret_env_values

ALERTS_RESOURCE_KEY = "alerts"
TOKEN_ENV = "SYNC_ALERT_SLACK_TOKEN"


class AlertDeliveryError(Exception):
    """Slack did not take the message (bad token, unknown channel, rate limit, network)."""


class AlertsResource(ConfigurableResource):
    """Slack alert destination. Without `slack_token` alerting is off (the sensor says so)."""

    slack_token: Optional[str] = Field(
        default=None, description=f"Bot token with chat:write, usually EnvVar('{TOKEN_ENV}')."
    )
    channel: str = Field(default="#alerts", description="Channel name or ID to post in.")
    slack_base_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base (the sandbox's in tests)."
    )
    webserver_base_url: str = Field(
        default="http://localhost:3000", description="Dagster UI address used in run links."
    )
    timeout_s: int = Field(default=10, description="Per-request timeout of a Slack post.")

    @classmethod
    def from_env(cls) -> AlertsResource:
        """As the environment configures it (the README's configuration table); the token
        stays an EnvVar so its value never lands in the definitions."""
        settings = {
            "channel": os.environ.get("SYNC_ALERT_CHANNEL") or "#alerts",
            "slack_base_url": os.environ.get("SYNC_ALERT_SLACK_BASE_URL")
            or "https://slack.com/api/",
            "webserver_base_url": os.environ.get("DAGSTER_WEBSERVER_URL")
            or "http://localhost:3000",
        }
        if os.environ.get(TOKEN_ENV):
            settings["slack_token"] = EnvVar(TOKEN_ENV)
        return cls(**settings)

    @property
    def configured(self) -> bool:
        return bool(self.slack_token)

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_base_url.rstrip('/')}/runs/{run_id}"

    def asset_url(self, asset_key: str) -> str:
        return f"{self.webserver_base_url.rstrip('/')}/assets/{quote(asset_key)}"

    def scrub(self, text: str) -> str:
        return scrub_secrets(text, [self.slack_token, *secret_env_values()])

    def post(self, text: str) -> None:
        """Post `text` (scrubbed of credentials) to the channel or raise AlertDeliveryError."""
        client = WebClient(
            token=self.slack_token,
            base_url=self.slack_base_url.rstrip("/") + "/",
            timeout=self.timeout_s,
        )
        try:
            client.chat_postMessage(
                channel=self.channel, text=self.scrub(text), unfurl_links=False, unfurl_media=False
            )
        except SlackApiError as exc:
            raise AlertDeliveryError(
                f"Slack refused the alert for {self.channel}: {exc.response.get('error')}"
            ) from None
        except (SlackClientError, OSError) as exc:
            raise AlertDeliveryError(self.scrub(f"Slack unreachable: {exc}")) from None
