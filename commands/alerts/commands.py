"""/milvus alerts | ack | silence | unsilence, and the Acknowledge / Silence / Unsilence buttons.

The work lives in the sibling modules (groups, silences, render); here are the argument models, the
role checks in the group's own environment (a group id from one environment must not be silenced by
someone who only operates another), and the replies.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bot import blocks as bk
from bot.args import positional
from bot.config import Role
from bot.context import Context
from bot.errors import IntegrationError, UsageError, UserError
from bot.registry import action, command
from bot.reply import Reply
from bot.state import utcnow
from bot.units import format_duration
from commands.alerts import groups as alert_groups
from commands.alerts import silences, storm
from commands.alerts.render import SEVERITY_ICON, SILENCE_CHOICES, slack_time


class AlertsArgs(BaseModel):
    env: str | None = positional(None, description="environment (default: every one you can see)")
    resolved: bool = Field(False, description="also list groups that have resolved")
    limit: int = Field(30, ge=1, le=200, description="how many groups")


class TargetArgs(BaseModel):
    target: str = positional(description="group id from the alert message, alert name, or fingerprint")


class SilenceArgs(BaseModel):
    target: str = positional(description="group id from the alert message, alert name, or fingerprint")
    duration: str = positional(description="how long: 30m, 4h, 2d, 1w (at most 30d)")
    reason: list[str] = positional([], description="why, for the Alertmanager comment")


def _require_operator(ctx: Context, group: alert_groups.AlertGroup, what: str) -> None:
    ctx.runtime.policy.require(ctx.user, Role.operator, group.environment, what)


def _group_data(group: alert_groups.AlertGroup) -> dict[str, Any]:
    now = utcnow()
    active = group.active_silences(now)
    timed = [s for s in active if s.get("kind") == "timed"]
    started = group.started_at()
    return {
        "id": group.id,
        "short_id": group.short_id,
        "environment": group.environment,
        "name": group.name,
        "severity": group.severity,
        "status": group.status,
        "firing": len(group.firing()),
        "resolved": len(group.resolved()),
        "started_at": started.isoformat() if started else None,
        "resolved_at": group.resolved_at.isoformat() if group.resolved_at else None,
        "acknowledged_by": group.acked_by,
        "silenced_until": max(s["until"] for s in timed) if timed else None,
        "silences": [s["id"] for s in active],
        "channel": group.channel,
        "storm": group.storm_id,
    }


@command(
    "alerts",
    summary="What is firing now, with who acknowledged or silenced it",
    args=AlertsArgs,
    role=Role.viewer,
    examples=("/milvus alerts", "/milvus alerts prod", "/milvus alerts prod --resolved"),
)
def list_alerts(ctx: Context, args: AlertsArgs) -> Reply:
    if args.env:
        ctx.runtime.environment(args.env)
        ctx.runtime.policy.require(ctx.user, Role.viewer, args.env, "alerts")
    groups = alert_groups.list_groups(ctx.runtime, environment=args.env, include_resolved=args.resolved)
    policy = ctx.runtime.policy
    visible = [g for g in groups if policy.role_in(ctx.user, g.environment) is not None][: args.limit]
    where = f" in `{bk.escape(args.env)}`" if args.env else ""
    if not visible:
        scope = [ctx.runtime.environment(args.env)] if args.env else list(ctx.config.environments.values())
        if not any(env.alertmanager_url for env in scope):
            # "Nothing is firing" would claim a watch that nobody keeps here.
            key = f"environments.{scope[0].name if len(scope) == 1 else '<env>'}.alertmanager_url"
            text = (
                f":grey_question: No Alertmanager is connected{where}, so no alerts can arrive: set `{key}` and "
                "point Alertmanager's webhook at the bot's `/alertmanager`."
            )
            return Reply(text=text, blocks=[bk.section(text)], data={"groups": []})
        text = f":white_check_mark: Nothing is firing{where}."
        return Reply(text=text, blocks=[bk.section(text)], data={"groups": []})
    now = utcnow()
    lines = []
    for g in visible:
        icon = SEVERITY_ICON.get(g.severity, ":large_blue_circle:")
        if g.status == "resolved":
            icon = ":large_green_circle:"
        bits = [f"{icon} *{bk.escape(g.name)}* `{g.short_id}`", bk.escape(g.environment or "no environment")]
        if g.status == "firing":
            bits.append(f"{len(g.firing())} firing")
            started = g.started_at()
            if started:
                bits.append(f"for {format_duration(now - started)}")
        else:
            bits.append("resolved")
        if g.acked_by:
            bits.append(f":eyes: acked by <@{bk.escape(g.acked_by)}>")
        timed = [s for s in g.active_silences(now) if s.get("kind") == "timed"]
        if timed:
            until = max(alert_groups.parse_time(s["until"]) or now for s in timed)
            bits.append(f":no_bell: silenced until {slack_time(until)}")
        lines.append(" · ".join(bits))
    storms = [s for s in storm.active_storms(ctx.runtime) if any(g.storm_id == s.id for g in visible)]
    blocks = [bk.header(f"Alerts{' in ' + args.env if args.env else ''}: {len(visible)} group(s)")]
    for active in storms:
        members = [g for g in visible if g.storm_id == active.id]
        note = (f":cyclone: *Alert storm* in <#{bk.escape(active.channel)}> since {slack_time(active.started_at)}: "
                f"{len(members)} of these groups are in its digest.")
        blocks.append(bk.section(note))
        lines.insert(0, note)
    for start in range(0, len(lines), 10):
        blocks.append(bk.section("\n".join(lines[start : start + 10])))
    blocks.append(
        bk.context("`/milvus ack <group>` · `/milvus silence <group> 4h [reason]` · `/milvus unsilence <group>`")
    )
    return Reply(
        text="\n".join(lines), blocks=blocks,
        data={"groups": [_group_data(g) for g in visible], "storms": [_storm_data(s, visible) for s in storms]},
    )


def _storm_data(active: storm.Storm, groups: list[alert_groups.AlertGroup]) -> dict[str, Any]:
    return {
        "id": active.id,
        "channel": active.channel,
        "started_at": active.started_at.isoformat(),
        "groups": [g.id for g in groups if g.storm_id == active.id],
        "digest_messages": len(active.parts),
    }


@command(
    "ack",
    summary="Acknowledge an alert group: silences exactly its alerts until they resolve",
    args=TargetArgs,
    role=Role.operator,
    examples=("/milvus ack a1b2c3d4", "/milvus ack MilvusQueryNodeMemoryHigh"),
)
def ack(ctx: Context, args: TargetArgs) -> Reply:
    group = alert_groups.find_group(ctx.runtime, args.target)
    _require_operator(ctx, group, "ack")
    group = silences.acknowledge(ctx.runtime, group.id, ctx.user.user_id)
    return _done(group, f":eyes: Acknowledged *{bk.escape(group.name)}* `{group.short_id}`: "
                        f"{len(group.firing())} alert(s) silenced in Alertmanager until they resolve.")


@command(
    "silence",
    summary="Silence an alert group in Alertmanager for a while",
    args=SilenceArgs,
    role=Role.operator,
    examples=("/milvus silence a1b2c3d4 4h planned maintenance",),
)
def silence(ctx: Context, args: SilenceArgs) -> Reply:
    duration = silences.parse_silence_duration(args.duration)
    group = alert_groups.find_group(ctx.runtime, args.target)
    _require_operator(ctx, group, "silence")
    group = silences.silence(ctx.runtime, group.id, ctx.user.user_id, duration, " ".join(args.reason))
    return _done(group, f":no_bell: Silenced *{bk.escape(group.name)}* `{group.short_id}` "
                        f"for {format_duration(duration)}.")


@command(
    "unsilence",
    summary="Expire the silences the bot created for an alert group",
    args=TargetArgs,
    role=Role.operator,
    examples=("/milvus unsilence a1b2c3d4",),
)
def unsilence(ctx: Context, args: TargetArgs) -> Reply:
    group = alert_groups.find_group(ctx.runtime, args.target)
    _require_operator(ctx, group, "unsilence")
    group, count = silences.unsilence(ctx.runtime, group.id, ctx.user.user_id)
    return _done(group, f":bell: Unsilenced *{bk.escape(group.name)}* `{group.short_id}`: {count} silence(s) expired.")


def _done(group: alert_groups.AlertGroup, text: str) -> Reply:
    return Reply(text=text, blocks=[bk.section(text)], data={"group": _group_data(group)})


# -- buttons on the alert message ---------------------------------------------------------------


def _button_group(ctx: Context, payload: dict[str, Any], what: str) -> tuple[alert_groups.AlertGroup, int | None]:
    group_id = payload.get("group")
    if not isinstance(group_id, str):
        raise UsageError("This button carries no alert group; use `/milvus alerts`.")
    group = alert_groups.load_group(ctx.runtime, group_id)
    if group is None:
        raise UsageError("This alert group is not known to the bot any more.")
    _require_operator(ctx, group, what)
    episode = payload.get("episode")
    return group, episode if isinstance(episode, int) else None


@action("alert_ack", role=Role.operator)
def on_ack(ctx: Context, payload: dict[str, Any]) -> Reply:
    group, episode = _button_group(ctx, payload, "ack")
    group = silences.acknowledge(ctx.runtime, group.id, ctx.user.user_id, episode=episode)
    return _done(
        group, f":eyes: You acknowledged *{bk.escape(group.name)}*; its alerts are silenced until they resolve."
    )


@action("alert_silence", role=Role.operator)
def on_silence(ctx: Context, payload: dict[str, Any]) -> Reply:
    choice = payload.get("duration")
    if choice not in SILENCE_CHOICES:
        raise UsageError(f"Unknown silence length {bk.escape(choice)}; use `/milvus silence <group> <duration>`.")
    group, episode = _button_group(ctx, payload, "silence")
    duration = silences.parse_silence_duration(str(choice))
    group = silences.silence(ctx.runtime, group.id, ctx.user.user_id, duration, episode=episode)
    return _done(group, f":no_bell: You silenced *{bk.escape(group.name)}* for {choice}.")


@action("alert_unsilence", role=Role.operator)
def on_unsilence(ctx: Context, payload: dict[str, Any]) -> Reply:
    group, _ = _button_group(ctx, payload, "unsilence")
    group, count = silences.unsilence(ctx.runtime, group.id, ctx.user.user_id)
    return _done(group, f":bell: You unsilenced *{bk.escape(group.name)}*: {count} silence(s) expired.")


@action("alert_storm_silence_all", role=Role.operator)
def on_silence_all(ctx: Context, payload: dict[str, Any]) -> Reply:
    """Silence every firing group of a storm the presser may operate, each with its own real silences."""
    storm_id = payload.get("storm")
    active = storm.load_storm(ctx.runtime, storm_id) if isinstance(storm_id, str) else None
    if active is None:
        raise UsageError("This storm is not known to the bot any more; use `/milvus alerts`.")
    policy = ctx.runtime.config.alert_storm.for_channel(active.channel)
    duration = silences.parse_silence_duration(policy.silence_for)
    done, skipped, failed = [], [], []
    for group in storm.storm_groups(ctx.runtime, active.id):
        if group.status != "firing" or any(s.get("kind") == "timed" for s in group.active_silences()):
            continue
        role = ctx.runtime.policy.role_in(ctx.user, group.environment)
        if role is None or role < Role.operator:
            skipped.append(group)
            continue
        try:
            silences.silence(ctx.runtime, group.id, ctx.user.user_id, duration, "Silence all (alert storm)")
            done.append(group)
        except (UserError, IntegrationError) as exc:
            failed.append(f"`{group.short_id}`: {getattr(exc, 'message', exc)}")
    with alert_groups.GROUP_LOCK:
        latest = storm.load_storm(ctx.runtime, active.id) or active
        latest.silenced_all.append({"by": ctx.user.user_id, "at": utcnow().isoformat(), "groups": len(done)})
        storm.save_storm(ctx.runtime, latest)
        storm.refresh(ctx.runtime, latest.id)
    text = f":no_bell: You silenced {len(done)} group(s) of the storm for {policy.silence_for}."
    if skipped:
        text += f" {len(skipped)} group(s) are in environments you do not operate and were left alone."
    if failed:
        text += " Not silenced: " + "; ".join(failed[:5]) + ("…" if len(failed) > 5 else "")
    return Reply(text=text, blocks=[bk.section(text)],
                 data={"storm": active.id, "silenced": [g.id for g in done], "skipped": [g.id for g in skipped]})


def _menu_group(ctx: Context, payload: dict[str, Any], what: str) -> alert_groups.AlertGroup:
    """The group picked in a storm digest's menu (the option's value is the group id)."""
    group_id = payload.get("value")
    group = alert_groups.load_group(ctx.runtime, group_id) if isinstance(group_id, str) else None
    if group is None:
        raise UsageError("This alert group is not known to the bot any more; use `/milvus alerts`.")
    _require_operator(ctx, group, what)
    return group


@action("alert_storm_ack", role=Role.operator)
def on_storm_ack(ctx: Context, payload: dict[str, Any]) -> Reply:
    group = _menu_group(ctx, payload, "ack")
    group = silences.acknowledge(ctx.runtime, group.id, ctx.user.user_id)
    return _done(
        group, f":eyes: You acknowledged *{bk.escape(group.name)}*; its alerts are silenced until they resolve."
    )


@action("alert_storm_silence", role=Role.operator)
def on_storm_silence(ctx: Context, payload: dict[str, Any]) -> Reply:
    group = _menu_group(ctx, payload, "silence")
    choice = ctx.runtime.config.alert_storm.for_channel(group.channel or "").silence_for
    group = silences.silence(ctx.runtime, group.id, ctx.user.user_id, silences.parse_silence_duration(choice))
    return _done(group, f":no_bell: You silenced *{bk.escape(group.name)}* for {choice}.")
