"""The capabilities, one package (or module) each, and the one place that lists them.

Each exposes ``register(registry)``; ``build_registry`` calls them in order. This module is the
composition root: the console script starts here and hands the registry to the core, which never
imports a capability itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.registry import Registry


def build_registry() -> Registry:
    # Imported here, not at the top: `milvus-chatops --help` must not pay for every capability's
    # dependencies (SQLAlchemy, pyarrow, ...).
    from bot.registry import Registry
    from commands import (
        alerts,
        approvals,
        audit,
        backup,
        deploy,
        help,
        plan,
        readiness,
        reports,
        security,
        status,
        whoami,
    )

    registry = Registry()
    for capability in (help, whoami, status, audit, plan, deploy, approvals, backup, alerts, reports, security,
                       readiness):
        capability.register(registry)
    return registry


def main(argv: list[str] | None = None) -> int:
    from bot.cli import main as cli_main

    return cli_main(argv, build_registry)
