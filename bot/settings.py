"""Process settings: where things are and the secrets, read from the environment once at start-up.

Everything else (environments, channels, roles, schedules) lives in the YAML config, which must never
hold secrets: those come from here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    config_path: Path | None = Field(default=None, validation_alias=AliasChoices("MILVUS_CHATOPS_CONFIG"))
    data_dir: Path = Field(default=Path(".milvus-chatops"), validation_alias=AliasChoices("MILVUS_CHATOPS_DATA_DIR"))
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("MILVUS_CHATOPS_DATABASE_URL"))
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_api_url: str | None = Field(default=None, validation_alias=AliasChoices("SLACK_API_URL"))
    alertmanager_webhook_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ALERTMANAGER_WEBHOOK_TOKEN")
    )
    # Unset: INFO for serve, WARNING for run and console (they want the reply, not library chatter).
    log_level: str | None = Field(default=None, validation_alias=AliasChoices("MILVUS_CHATOPS_LOG_LEVEL"))
    # "json": one JSON object per line, for log pipelines; "text": one line per record for people.
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=AliasChoices("MILVUS_CHATOPS_LOG_FORMAT")
    )
    # Read by boto3 itself, not by us; held here only so that redaction knows their values.
    aws_access_key_id: SecretStr | None = Field(default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    aws_session_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("AWS_SESSION_TOKEN"))
    # Secrets the config names by variable (Milvus tokens), remembered once read so they are masked too.
    _read_secrets: set[str] = PrivateAttr(default_factory=set)

    @property
    def state_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def slack_api_base(self) -> str | None:
        """slack_sdk wants the base URL to end in /api/; accept it with or without."""
        if not self.slack_api_url:
            return None
        url = self.slack_api_url.rstrip("/")
        return url + "/" if url.endswith("/api") else url + "/api/"

    def secret_values(self) -> list[str]:
        """Every secret we hold, so redaction can scrub them from anything we show or log."""
        values = [
            s.get_secret_value()
            for s in (
                self.slack_bot_token,
                self.slack_signing_secret,
                self.slack_app_token,
                self.alertmanager_webhook_token,
                self.aws_access_key_id,
                self.aws_secret_access_key,
                self.aws_session_token,
            )
            if s is not None
        ]
        values.extend(self._read_secrets)
        return [v for v in values if len(v) >= 6]

    def secret(self, env_var: str | None) -> str | None:
        """A secret the config names by environment variable (e.g. a Milvus token per environment).

        The only place outside pydantic-settings that reads the process environment, so that config
        files hold names, never values.
        """
        if not env_var:
            return None
        import os

        value = os.environ.get(env_var) or None
        if value:
            self._read_secrets.add(value)
        return value
