"""/milvus checklist | loadtest | drill: proving that an environment is ready for production.

The checklist reads live facts (config, Kubernetes, Prometheus, Alertmanager's notifications, backup
records) and the stored results of load tests and drills, which run by hand or on a schedule.
"""

from __future__ import annotations

from bot.registry import Registry
from commands.readiness import drills, gate, loadtest, schedule


def register(registry: Registry) -> None:
    registry.add(gate.checklist, loadtest.loadtest, drills.drill_restore, drills.drill_pod)
    registry.executor("loadtest", loadtest.execute_loadtest)
    registry.executor("drill_pod", drills.execute_drill_pod)
    registry.job_source(schedule.readiness_jobs)
    registry.task("loadtest", schedule.scheduled_loadtest)
    registry.task("drill_restore", schedule.scheduled_restore_drill)
    registry.task("drill_pod", schedule.scheduled_pod_drill)
