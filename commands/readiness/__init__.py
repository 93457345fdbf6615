"""/milvus checklist | loadtest | drill: proving that an environment is ready for production.

The checklist reads live facts (config, Kubernetes, Prometheus, Alertmanager's notifications, backup
records) and the stored results of load tests and drills, which can be run by hand or on a schedule.
"""

from __future__ import annotations

from bot.registry import Registry
from commands.readiness import gate, loadtest


def register(registry: Registry) -> None:
    registry.add(gate.checklist, loadtest.loadtest)
    registry.executor("loadtest", loadtest.execute_loadtest)
