"""/milvus health | capacity | reports: health and capacity from Prometheus, with charts and
forecasts, on demand and on schedules.

queries.py (PromQL) -> checks.py (one line per check) and forecast.py (fits) -> render.py (the
report) and charts.py (PNGs) -> build.py (a whole report) -> schedule.py (jobs, last runs) and the
command modules health.py, capacity.py and commands.py.
"""

from __future__ import annotations

from bot.registry import Registry
from commands.reports import capacity, charts, commands, health, schedule


def register(registry: Registry) -> None:
    registry.add(health.health_command, capacity.capacity_command, commands.list_reports, commands.run_now)
    registry.job_source(schedule.report_jobs)
    registry.task("report", schedule.run_scheduled)
    registry.warm_up(charts.warm_up)
