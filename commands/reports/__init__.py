"""/milvus health | capacity | reports: health and capacity from Prometheus, with charts and
forecasts, on demand and on schedules."""

from __future__ import annotations

from bot.registry import Registry
from commands.reports import capacity, charts, commands, health


def register(registry: Registry) -> None:
    registry.add(health.health_command, capacity.capacity_command, commands.list_reports, commands.run_now)
    registry.job_source(commands.report_jobs)
    registry.task("report", commands.run_scheduled)
    registry.warm_up(charts.warm_up)
