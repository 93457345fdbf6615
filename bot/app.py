"""Start-up: settings, config and state are built once here and passed down."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from bot.config import Config, load_config
from bot.context import Runtime
from bot.messaging import Messenger
from bot.registry import Registry
from bot.settings import Settings
from bot.state import Store


def load_settings(config_path: str | None = None) -> Settings:
    settings = Settings()
    if config_path:
        settings.config_path = Path(config_path)
    return settings


def load(settings: Settings) -> tuple[Config, Store]:
    config = load_config(settings.config_path, settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.state_url)
    store.migrate()
    return config, store


def build_runtime(settings: Settings, messenger_on: Callable[[Store], Messenger], registry: Registry) -> Runtime:
    """``messenger_on(store)`` builds the messenger: the outbox keeps its queue in the state store."""
    config, store = load(settings)
    return Runtime(settings=settings, config=config, store=store, messenger=messenger_on(store), registry=registry)


class SecretFilter(logging.Filter):
    """Last line of defence: scrub known secret values from every log record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, ()
        return True


def setup_logging(settings: Settings, default_level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(SecretFilter(settings.secret_values()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((settings.log_level or default_level).upper())
