"""/milvus reports: the scheduled health and capacity reports, their last runs, and running one now.

Health runs daily and capacity weekly by default (config ``reports``: timezone, and per report cron,
channel, environments). Jobs come from the config through ``@job_source``; bot/scheduler.py runs
each due run once across restarts and replicas. The last run of each report and environment is kept
in the state store (kv ``reports.last_run``), whether a schedule, a command or an admin started it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel

from bot import blocks as bk
from bot.args import positional
from bot.config import Config, Role
from bot.context import Context
from bot.errors import IntegrationError, UserError
from bot.registry import command
from bot.reply import Message, Reply
from bot.scheduler import JobSpec, trigger_for
from commands.reports.engine import Kind, last_run, make_report, record_run

log = logging.getLogger("milvus_chatops.reports")
KINDS: tuple[Kind, ...] = ("health", "capacity")


def _targets(config: Config, kind: Kind) -> Iterator[tuple[str, str | None]]:
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
        for env, channel in _targets(config, kind):
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


class ReportsArgs(BaseModel):
    pass


@command(
    "reports",
    summary="Scheduled health and capacity reports: when, where, and how the last run went",
    args=ReportsArgs,
    examples=("/milvus reports", "/milvus reports run health prod"),
)
def list_reports(ctx: Context, args: ReportsArgs) -> Reply:
    config = ctx.config
    tz = config.reports.timezone
    now = dt.datetime.now(dt.UTC)
    lines: list[str] = []
    data: list[dict[str, Any]] = []
    for kind in KINDS:
        schedule = getattr(config.reports, kind)
        if schedule is None:
            lines.append(f"*{kind.capitalize()}*: not scheduled")
            continue
        spec = JobSpec("probe", "report", schedule.cron, tz)
        next_run = trigger_for(spec).get_next_fire_time(None, now)
        lines.append(
            f"*{kind.capitalize()}*: `{bk.escape(schedule.cron)}` ({bk.escape(tz)}), next {next_run:%Y-%m-%d %H:%M %Z}"
        )
        targets = list(_targets(config, kind))
        if not targets:
            lines.append("    no environment with `prometheus_url`")
        for env, channel in targets:
            last = last_run(ctx.store, kind, env)
            where = f"#{bk.escape(channel)}" if channel else "_no channel configured_"
            if last:
                when = last["at"][:16].replace("T", " ")
                verdict = last["verdict"]
                last_text = f"last {when} UTC ({bk.escape(last['trigger'])}): {bk.escape(verdict)}"
            else:
                last_text = "never run"
            lines.append(f"    {bk.escape(env)} → {where}: {last_text}")
            data.append(
                {
                    "kind": kind,
                    "environment": env,
                    "cron": schedule.cron,
                    "timezone": tz,
                    "channel": channel,
                    "next_run": next_run.isoformat() if next_run else None,
                    "last_run": last,
                }
            )
    if any(env.prometheus_url for env in config.environments.values()):
        footer = "Admins: `/milvus reports run <health|capacity> [env]` runs one now."
    else:  # offer no command that can only fail
        footer = "Reports read Prometheus: set `environments.<env>.prometheus_url` to have them."
    blocks = [bk.header("Scheduled reports"), bk.section("\n".join(lines)), bk.context(footer)]
    return Reply(text="Scheduled reports:\n" + "\n".join(lines), blocks=blocks, data={"reports": data})


class RunArgs(BaseModel):
    kind: Literal["health", "capacity"] = positional(description="health or capacity")
    env: str | None = positional(None, description="environment (may be omitted when only one is configured)")


@command(
    "reports run",
    summary="Run a scheduled report now and post it to its channel",
    args=RunArgs,
    role=Role.admin,
    targets_env=True,
    examples=("/milvus reports run health prod",),
)
def run_now(ctx: Context, args: RunArgs) -> Reply:
    env = ctx.require_env()
    ctx.services.prometheus(env)  # none configured: say that first, it is what the report needs
    kind: Kind = args.kind
    schedule = getattr(ctx.config.reports, kind)
    channels = ctx.config.channels_for(env)
    channel = (schedule.channel if schedule else None) or channels.reports or channels.ops
    if channel is None:
        raise UserError(
            f"No channel to post the {kind} report for {env.name} to.",
            hint=f"Set `reports.{kind}.channel` or `channels.reports`, or use `/milvus {kind} {env.name}`.",
        )
    ctx.progress(f"building the {kind} report for {env.name}")
    summary = deliver(ctx.runtime, kind, env.name, channel, trigger="admin", by=ctx.user.user_id)
    return Reply(
        text=f"Posted to #{channel}: {summary}",
        blocks=[bk.section(f"Posted to #{bk.escape(channel)}: {summary}")],
        data={"kind": kind, "environment": env.name, "channel": channel, "summary": summary},
    )
