"""Four-eyes approvals shared by every risky change: the workflow (workflow.py) and the commands,
buttons and form that answer a request (commands.py)."""

from __future__ import annotations

from bot.registry import Registry
from commands.approvals import commands, workflow

EXPIRY_SWEEP_S = 30.0


def register(registry: Registry) -> None:
    registry.add(commands.approve, commands.reject, commands.on_approve, commands.on_reject, commands.on_reject_reason)
    registry.sweep("expire_approvals", EXPIRY_SWEEP_S, workflow.expire_approvals)
