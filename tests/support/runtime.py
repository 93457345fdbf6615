"""The one way tests build a runtime: the real capabilities registered as ``serve`` registers them,
a migrated state store, and whatever messenger the test records with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import Config
from bot.context import GroupDirectory, Runtime
from bot.messaging import Messenger
from bot.registry import Registry
from bot.settings import Settings
from bot.state import Store
from commands import build_registry


def sqlite_store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.migrate()
    return store


def build_test_runtime(
    *,
    settings: Settings,
    config: Config | dict[str, Any],
    messenger: Messenger,
    store: Store | None = None,
    registry: Registry | None = None,
    directory: GroupDirectory | None = None,
) -> Runtime:
    if store is None:
        store = Store(settings.state_url)
        store.migrate()
    runtime = Runtime(
        settings=settings,
        config=config if isinstance(config, Config) else Config.model_validate(config),
        store=store,
        messenger=messenger,
        registry=registry if registry is not None else build_registry(),
    )
    if directory is not None:
        runtime.directory = directory
    return runtime
