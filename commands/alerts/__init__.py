"""/milvus alerts: Alertmanager notifications into channels by severity, Acknowledge / Silence as
real silences, messages updated in place. The webhook route and the worker are registered here."""

from __future__ import annotations

from bot.registry import Registry
from commands.alerts import commands, engine


def register(registry: Registry) -> None:
    registry.add(commands.list_alerts, commands.ack, commands.silence, commands.unsilence,
                 commands.on_ack, commands.on_silence, commands.on_unsilence)
    registry.route("/alertmanager", lambda runtime: engine.AlertIntake(runtime).handle)
    registry.worker(engine.AlertWorker)
