"""/milvus deploy | rollback | history: Helm releases per environment, behind four-eyes approval."""

from __future__ import annotations

from bot.registry import Registry
from commands.deploy import commands


def register(registry: Registry) -> None:
    registry.add(commands.deploy, commands.rollback, commands.history)
    registry.executor("deploy", commands.execute_deploy)
    registry.executor("rollback", commands.execute_rollback)
