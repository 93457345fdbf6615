"""/milvus plan: capacity from the official sizing formulas (sizing.py), Helm values for the chart
(values.py), the arguments and the form (inputs.py), the reply (render.py), and the handlers of the
command, the form and the buttons (commands.py)."""

from __future__ import annotations

from bot.registry import Registry
from commands.plan import commands


def register(registry: Registry) -> None:
    registry.add(commands.plan_command, commands.on_submit, commands.on_prefill, commands.on_deploy)
