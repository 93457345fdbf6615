"""When reports run on their own, and what the last run of each said.

Health runs daily and capacity weekly by default (config ``reports``: timezone, and per report cron,
channel, environments). Jobs come from the config through the job source; bot/scheduler.py runs
each due run once across restarts and replicas. The last run of each report and environment is kept
in the state store (kv ``reports.last_run``), whether a schedule, a command or an admin started it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from bot import blocks as bk
from bot.config import Config
from bot.errors import IntegrationError
from bot.reply import Message
from bot.scheduler import JobSpec
from commands.reports.build import make_report
from commands.reports.render import Kind

log = logging.getLogger("milvus_chatops.reports")
KINDS: tuple[Kind, ...] = ("health", "capacity")


def targets(config: Config, kind: Kind) -> Iterator[tuple[str, str | None]]:
    """(environment, channel) pairs a report kind is scheduled for."""
    schedule = getattr(config.reports, kind)
    if schedule is None:
        return
    names = schedule.environments or [n for n, e in config.environments.items() if e.prometheus_url]
    for name in names:
        env = config.environments.get(name)
        if env is None:
            continue
        channels = config.channels_for(env)
        yield name, schedule.channel or channels.reports or channels.ops


def report_jobs(config: Config) -> Iterator[JobSpec]:
    for kind in KINDS:
        schedule = getattr(config.reports, kind)
        for env, channel in targets(config, kind):
            if channel is None:
                log.warning(
                    "%s report for %s has no channel (set reports.%s.channel or channels.reports)", kind, env, kind
                )
                continue
            yield JobSpec(
                job_id=f"report:{kind}:{env}",
                task="report",
                cron=schedule.cron,
                timezone=config.reports.timezone,
                kwargs={"kind": kind, "env": env, "channel": channel},
            )


def deliver(runtime: Any, kind: Kind, env_name: str, channel: str, *, trigger: str, by: str) -> str:
    """Build a report and post it, charts in its thread; returns a one-line summary."""
    env = runtime.environment(env_name)
    try:
        report = make_report(runtime, env, kind)
    except IntegrationError as exc:
        # The team reads these every morning: say that the report is missing and why.
        runtime.messenger.post(
            channel,
            Message(
                f"{kind.capitalize()} report for {env_name} could not be built: {exc.message}",
                [
                    bk.section(
                        f":warning: *{kind.capitalize()} report for {bk.escape(env_name)}* could not be"
                        f" built: {bk.escape(exc.message)}"
                    )
                ],
            ),
        )
        record_run(runtime.store, kind, env_name, trigger=trigger, by=by, verdict="failed", summary=exc.message)
        raise
    # Scheduled runs are claimed once per scheduled time by the scheduler; an admin's run-now is
    # meant to post every time, so no dedupe key here. The ref is unique so the charts thread on it.
    ref = runtime.messenger.post(
        channel,
        report.message(),
        ref=f"report:{kind}:{env_name}:{report.generated_at:%Y%m%dT%H%M%S}:{uuid.uuid4().hex[:8]}",
    )
    if report.charts:
        runtime.messenger.upload(channel, report.charts, thread_ref=ref, comment=report.title())
    summary = report.text()
    record_run(
        runtime.store,
        kind,
        env_name,
        trigger=trigger,
        by=by,
        verdict=report.verdict.value,
        summary=report.verdict_text(),
    )
    return summary


def run_scheduled(runtime: Any, *, kind: Kind, env: str, channel: str, **_: Any) -> str:
    return deliver(runtime, kind, env, channel, trigger="schedule", by="scheduler")


LAST_RUN_NS = "reports.last_run"


def record_run(store: Any, kind: Kind, env: str, *, trigger: str, by: str, verdict: str, summary: str) -> None:
    """Remember the last run of each report and environment, whoever started it."""
    store.kv_put(
        LAST_RUN_NS,
        f"{kind}:{env}",
        {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "trigger": trigger,
            "by": by,
            "verdict": verdict,
            "summary": summary[:500],
        },
    )


def last_run(store: Any, kind: Kind, env: str) -> dict[str, Any] | None:
    value = store.kv_get(LAST_RUN_NS, f"{kind}:{env}")
    return value if isinstance(value, dict) else None
