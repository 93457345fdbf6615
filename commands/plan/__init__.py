"""/milvus plan: capacity from the official sizing formulas (sizing.py), Helm values for the chart
(values.py), and the command, form and buttons (commands.py)."""

from __future__ import annotations

from bot.registry import Registry
from commands.plan import commands


def register(registry: Registry) -> None:
    registry.add(commands.plan_command, commands.on_submit, commands.on_prefill, commands.on_deploy)
