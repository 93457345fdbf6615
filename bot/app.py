"""Start-up: settings, config and state are built once here and passed down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from bot.config import Config, format_validation_error, load_config
from bot.context import Runtime
from bot.errors import ConfigError
from bot.messaging import Messenger
from bot.registry import Registry
from bot.settings import Settings
from bot.state import Store


def load_settings(config_path: str | None = None) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "the process environment")) from None
    if config_path:
        settings.config_path = Path(config_path)
    return settings


def load(settings: Settings) -> tuple[Config, Store]:
    config = load_config(settings.config_path, settings.data_dir)
    for env in config.environments.values():
        settings.secret(env.milvus.token_env)  # read now so that logs mask them from the first record on
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.state_url)
    store.migrate()
    return config, store


def build_runtime(settings: Settings, messenger_on: Callable[[Store], Messenger], registry: Registry) -> Runtime:
    """``messenger_on(store)`` builds the messenger: the outbox keeps its queue in the state store."""
    config, store = load(settings)
    return Runtime(settings=settings, config=config, store=store, messenger=messenger_on(store), registry=registry)
