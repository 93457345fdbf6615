"""Scheduled work (backups, reports, sweeps): apscheduler with its jobs kept in the state store.

Capabilities register *tasks* and *job sources* (which derive jobs from the config) and *sweeps*
(housekeeping every few seconds) in the registry.
Each due run is claimed by inserting a ``job_runs`` row keyed by job and scheduled time, so a restart
neither loses a run (apscheduler keeps next_run_time in the store and runs misfires within the grace
time) nor doubles it, and several replicas sharing the store run it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import schema
from bot.state import as_utc, utcnow

if TYPE_CHECKING:
    from bot.config import Config
    from bot.context import Runtime
    from bot.registry import Registry

log = logging.getLogger("milvus_chatops.scheduler")

MISFIRE_GRACE_S = 6 * 3600
OWNER = f"{socket.gethostname()}:{os.getpid()}"

_runtime: Runtime | None = None  # set by Scheduler.start(); pickled jobs cannot carry it


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    task: str
    cron: str
    timezone: str = "UTC"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        raw = json.dumps([self.task, self.cron, self.timezone, self.kwargs], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _run_sweep(index: int) -> None:
    if _runtime is None:
        return
    sweep = _runtime.registry.sweeps[index]
    try:
        sweep.fn(_runtime)
    except Exception:
        log.exception("sweep %s failed", sweep.name)


def jobs_from_config(registry: Registry, config: Config) -> list[JobSpec]:
    specs: list[JobSpec] = []
    for source in registry.job_sources:
        specs.extend(source(config))
    return specs


def trigger_for(spec: JobSpec) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(spec.cron, timezone=spec.timezone)


def last_fire_time(spec: JobSpec, now: dt.datetime) -> dt.datetime:
    """The scheduled time of the run that is due now: the latest fire time not after ``now``."""
    trigger = trigger_for(spec)
    probe = trigger.get_next_fire_time(None, now - dt.timedelta(days=8))
    last = probe
    while probe is not None and probe <= now:
        last = probe
        probe = trigger.get_next_fire_time(probe, probe + dt.timedelta(seconds=1))
    return as_utc(last.astimezone(dt.UTC)) if last else now


def run_job(runtime: Runtime, spec: JobSpec, scheduled_for: dt.datetime, *, actor: str = "scheduler") -> str | None:
    """Claim and run one scheduled run; returns its summary, or None when another run owns it."""
    t = schema.job_runs
    started = time.perf_counter()
    try:
        with runtime.store.begin() as conn:
            conn.execute(
                insert(t).values(
                    job_id=spec.job_id,
                    scheduled_for=scheduled_for,
                    task=spec.task,
                    owner=OWNER,
                    started_at=utcnow(),
                    outcome="running",
                )
            )
    except IntegrityError:
        log.info("job %s for %s already claimed elsewhere", spec.job_id, scheduled_for)
        return None
    env = spec.kwargs.get("env")
    outcome, summary, ref = "ok", "", None
    try:
        task = runtime.registry.tasks[spec.task]
        summary = task(runtime, **spec.kwargs) or ""
    except Exception as exc:
        from bot.errors import describe_failure

        outcome = "failed"
        summary, ref = describe_failure(exc, context=f"scheduled job {spec.job_id}")
    with runtime.store.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.job_id == spec.job_id, t.c.scheduled_for == scheduled_for)
            .values(finished_at=utcnow(), outcome=outcome, summary=summary[:2000])
        )
    runtime.audit.record(
        user_id=actor,
        action=f"{spec.task} ({spec.job_id})",
        kind="schedule",
        environment=env if isinstance(env, str) else None,
        arguments={k: v for k, v in spec.kwargs.items() if isinstance(v, str | int | float | bool)},
        outcome=outcome,
        detail=summary,
        reference=ref,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    return summary


def last_runs(runtime: Runtime) -> dict[str, dict[str, Any]]:
    t = schema.job_runs
    result: dict[str, dict[str, Any]] = {}
    with runtime.store.begin() as conn:
        for row in conn.execute(select(t).order_by(t.c.scheduled_for)).mappings():
            result[row["job_id"]] = {
                "scheduled_for": as_utc(row["scheduled_for"]),
                "outcome": row["outcome"],
                "summary": row["summary"],
                "finished_at": as_utc(row["finished_at"]) if row["finished_at"] else None,
            }
    return result


def _fire(spec_json: str) -> None:
    """Entry point apscheduler calls (a module-level function, so jobs can be stored)."""
    spec = JobSpec(**json.loads(spec_json))
    if _runtime is None:
        log.error("scheduled job %s fired with no runtime", spec.job_id)
        return
    run_job(_runtime, spec, last_fire_time(spec, utcnow()))


class Scheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._scheduler: Any = None

    def start(self) -> list[JobSpec]:
        global _runtime
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        _runtime = self.runtime
        self._scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.runtime.store.engine),
                "memory": MemoryJobStore(),
            },
            job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S, "max_instances": 1},
            timezone="UTC",
        )
        self._scheduler.start(paused=True)
        specs = jobs_from_config(self.runtime.registry, self.runtime.config)
        self._sync(specs)
        for index, sweep in enumerate(self.runtime.registry.sweeps):
            self._scheduler.add_job(
                _run_sweep,
                "interval",
                seconds=sweep.seconds,
                args=[index],
                id=f"sweep:{sweep.name}",
                jobstore="memory",
                replace_existing=True,
                # A start-up sweep runs as soon as the scheduler resumes, off the start-up path.
                **({"next_run_time": utcnow()} if sweep.at_start else {}),
            )
        self._scheduler.resume()
        return specs

    def _sync(self, specs: list[JobSpec]) -> None:
        wanted = {s.job_id: s for s in specs}
        for job in self._scheduler.get_jobs(jobstore="default"):
            if job.id not in wanted:
                job.remove()
        for spec in specs:
            existing = self._scheduler.get_job(spec.job_id)
            # Keep an unchanged job as stored: replacing it would recompute next_run_time from now
            # and silently drop a run that came due while the bot was down.
            if existing is not None and existing.name == spec.fingerprint():
                continue
            self._scheduler.add_job(
                _fire,
                trigger_for(spec),
                args=[json.dumps(spec.__dict__)],
                id=spec.job_id,
                name=spec.fingerprint(),
                replace_existing=True,
            )

    def next_runs(self) -> dict[str, dt.datetime | None]:
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    def stop(self) -> None:
        global _runtime
        if self._scheduler is not None:
            # apscheduler 3 processes due jobs once more after shutdown() and advances their
            # next_run_time although the stopped executor never runs them: a run due at that moment
            # would be lost. Detaching the persistent store first keeps it out of that last pass.
            self._scheduler.pause()
            self._scheduler.remove_jobstore("default", shutdown=False)
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        _runtime = None
