"""/milvus reports (the schedules and their last runs), /milvus reports run, and the on-demand
answer that `/milvus health` and `/milvus capacity` share."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel

from bot import blocks as bk
from bot.args import positional
from bot.config import Role
from bot.context import Context
from bot.errors import UserError
from bot.registry import command
from bot.reply import Reply
from bot.scheduler import JobSpec, trigger_for
from commands.reports.build import make_report
from commands.reports.render import Kind
from commands.reports.schedule import KINDS, deliver, last_run, record_run, targets


def report_on_demand(ctx: Context, kind: Kind, *, window: dt.timedelta | None = None, charts: bool = True) -> Reply:
    """What `/milvus health` and `/milvus capacity` answer: the report, its run recorded as the user's."""
    env = ctx.require_env()
    report = make_report(ctx.runtime, env, kind, window=window, charts=charts)
    record_run(
        ctx.store,
        kind,
        env.name,
        trigger="command",
        by=ctx.user.user_id,
        verdict=report.verdict.value,
        summary=report.verdict_text(),
    )
    return Reply(text=report.text(), blocks=report.blocks(), data=report.to_data(), files=report.charts)


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
        scheduled = list(targets(config, kind))
        if not scheduled:
            lines.append("    no environment with `prometheus_url`")
        for env, channel in scheduled:
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
