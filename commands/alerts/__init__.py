"""/milvus alerts: Alertmanager notifications into channels by severity, Acknowledge / Silence as
real silences, messages updated in place.

intake (the webhook, stored before it is answered) -> worker (notifications into group state and
messages through the outbox) -> groups (state and storage) / render (Block Kit) / silences
(Alertmanager silences behind the buttons and commands) / storm (one digest per channel when
messages would queue up)."""

from __future__ import annotations

from bot.registry import Registry
from commands.alerts import commands
from commands.alerts.intake import AlertIntake
from commands.alerts.worker import AlertWorker


def register(registry: Registry) -> None:
    registry.add(commands.list_alerts, commands.ack, commands.silence, commands.unsilence,
                 commands.on_ack, commands.on_silence, commands.on_unsilence,
                 commands.on_storm_ack, commands.on_storm_silence, commands.on_silence_all)
    registry.route("/alertmanager", lambda runtime: AlertIntake(runtime).handle)
    registry.worker(AlertWorker)
