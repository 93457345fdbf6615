"""The Slack message of one alert group (Block Kit) and the thread note for a batch of changes.

Everything shown comes from alert labels and annotations, so every piece of it is escaped, links are
checked before they become links, and the blocks are fitted to Block Kit's limits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bot import blocks as bk
from bot.reply import Message
from bot.state import as_utc, utcnow
from bot.units import format_duration
from commands.alerts.groups import AlertGroup, Change, parse_time

SEVERITY_ICON = {
    "emergency": ":rotating_light:",
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
}
SILENCE_CHOICES = ("1h", "4h", "24h")
MAX_ALERT_LINES = 20


def slack_time(value: dt.datetime) -> str:
    """A Slack date token: shown in each reader's time zone, with a UTC fallback."""
    value = as_utc(value)
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{value:%Y-%m-%d %H:%M} UTC>"


def safe_url(value: Any) -> str | None:
    """A link target we can put inside ``<url|text>``: http(s) only, no characters that end the link."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not re.match(r"^https?://", url, re.IGNORECASE) or len(url) > 1500:
        return None
    if any(c in url for c in "<>|\n\r\t "):
        return None
    return url.replace("&", "&amp;")



def _label_text(labels: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    return ", ".join(f"{bk.escape(k)}={bk.escape(v)}" for k, v in sorted(labels.items()) if k not in skipped)


def _code(escaped: str) -> str:
    """Inline code around text that is already escaped; a backtick in a label cannot end it early."""
    return "`" + escaped.replace("`", "'") + "`"


def _alert_line(alert: Mapping[str, Any], common: Mapping[str, str], common_annotations: Mapping[str, str]) -> str:
    icon = ":red_circle:" if alert["status"] == "firing" else ":large_green_circle:"
    distinct = _label_text(alert["labels"], skip=[*common, "alertname", "severity"])
    summary = alert["annotations"].get("summary") or alert["annotations"].get("description") or ""
    if summary == common_annotations.get("summary"):
        summary = ""
    parts = [icon]
    if distinct:
        parts.append(_code(bk.truncate(distinct, 300)))
    if summary:
        parts.append(bk.truncate(bk.escape(summary), 300))
    started = parse_time(alert.get("startsAt"))
    if alert["status"] == "firing" and started:
        parts.append(f"(since {slack_time(started)})")
    elif alert["status"] == "resolved":
        ended = parse_time(alert.get("endsAt"))
        if ended:
            parts.append(f"(resolved {slack_time(ended)})")
    if len(parts) == 1:
        parts.append(bk.escape(alert["labels"].get("alertname", "alert")))
    return " ".join(parts)


def _links(group: AlertGroup) -> list[str]:
    alerts = list(group.alerts.values())
    runbook = group.common_annotations.get("runbook_url") or next(
        (a["annotations"].get("runbook_url") for a in alerts if a["annotations"].get("runbook_url")), None
    )
    generator = next((a.get("generatorURL") for a in alerts if a.get("generatorURL")), None)
    links = []
    if url := safe_url(runbook):
        links.append(f":book: <{url}|Runbook>")
    if url := safe_url(generator):
        links.append(f":chart_with_upwards_trend: <{url}|Source query>")
    if url := safe_url(group.external_url):
        links.append(f":bell: <{url}|Alertmanager>")
    return links


def render_group(group: AlertGroup, now: dt.datetime | None = None) -> Message:
    now = now or utcnow()
    firing, resolved = group.firing(), group.resolved()
    env_text = group.environment or "no environment"
    name = group.name
    if group.status == "resolved":
        title = f":white_check_mark: RESOLVED: {name}"
        status_line = ":large_green_circle: *Resolved*"
        if group.resolved_at:
            status_line += f" {slack_time(group.resolved_at)}"
            started = group.started_at()
            if started:
                status_line += f", after {format_duration(group.resolved_at - started)}"
    else:
        icon = SEVERITY_ICON.get(group.severity, ":large_blue_circle:")
        title = f"{icon} FIRING ({len(firing)}): {name}"
        started = group.started_at()
        status_line = f"{icon} *Firing*: {len(firing)} alert(s)"
        if resolved:
            status_line += f", {len(resolved)} resolved"
        if started:
            status_line += f", since {slack_time(started)}"
    summary = group.common_annotations.get("summary") or group.common_annotations.get("description")
    lines = [status_line]
    if summary:
        lines.append(bk.escape(summary))
    description = group.common_annotations.get("description")
    if description and description != summary:
        lines.append(bk.truncate(bk.escape(description), 1000))
    blocks: list[dict[str, Any]] = [bk.header(title), bk.section("\n".join(lines))]

    state_bits = []
    if group.acked_by:
        acked = f":eyes: Acknowledged by <@{bk.escape(group.acked_by)}>"
        if group.acked_at:
            acked += f" {slack_time(group.acked_at)}"
        state_bits.append(acked)
    timed = [s for s in group.active_silences(now) if s.get("kind") == "timed"]
    if timed:
        until = max(parse_time(s.get("until")) or now for s in timed)
        by = timed[-1].get("by", "")
        state_bits.append(f":no_bell: Silenced until {slack_time(until)} by <@{bk.escape(by)}>")
    fields = [
        f"*Environment*\n{bk.escape(env_text)}",
        f"*Severity*\n{bk.escape(group.severity)}",
        f"*Group*\n`{group.short_id}`",
    ]
    if state_bits:
        fields.append("*State*\n" + "\n".join(state_bits))
    blocks.append(bk.fields(fields))

    common = _label_text(group.common_labels, skip=["alertname", "severity"])
    if common:
        blocks.append(bk.context(f"Labels: {bk.truncate(common, 2500)}"))

    ordered = sorted(firing, key=lambda a: a.get("startsAt", "")) + sorted(
        resolved, key=lambda a: a.get("endsAt", ""), reverse=True
    )
    if len(group.alerts) > 1 or (ordered and _label_text(ordered[0]["labels"], skip=[*group.common_labels])):
        shown = ordered[:MAX_ALERT_LINES]
        alert_lines = [_alert_line(a, group.common_labels, group.common_annotations) for a in shown]
        chunk: list[str] = []
        size = 0
        for line in alert_lines:
            if chunk and size + len(line) + 1 > 2800:
                blocks.append(bk.section("\n".join(chunk)))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            blocks.append(bk.section("\n".join(chunk)))
        hidden = ordered[MAX_ALERT_LINES:]
        if hidden:
            hidden_firing = sum(1 for a in hidden if a["status"] == "firing")
            blocks.append(bk.context(
                f"…and {len(hidden)} more alert(s) not listed ({hidden_firing} firing, "
                f"{len(hidden) - hidden_firing} resolved). `/milvus alerts` shows the group's totals."
            ))

    links = _links(group)
    if links:
        blocks.append(bk.context("   ".join(links)))

    value = {"env": group.environment, "group": group.id, "episode": group.episode}
    buttons = []
    if group.status == "firing":
        if not group.acked_by:
            buttons.append(bk.button("Acknowledge", "alert_ack", value, style="primary"))
        for choice in SILENCE_CHOICES:
            buttons.append(bk.button(f"Silence {choice}", f"alert_silence:{choice}", {**value, "duration": choice}))
    if group.active_silences(now):
        buttons.append(bk.button("Unsilence", "alert_unsilence", value, style="danger"))
    if buttons:
        blocks.append(bk.actions(*buttons, block_id=f"alert:{group.short_id}:{group.episode}"))

    state = "RESOLVED" if group.status == "resolved" else f"FIRING:{len(firing)}"
    text = f"[{state}] {bk.escape(name)} ({bk.escape(env_text)}, {bk.escape(group.severity)})"
    if summary:
        text += f": {bk.truncate(bk.escape(summary), 500)}"
    return Message(text=text, blocks=bk.fit_blocks(blocks))


def render_changes(group: AlertGroup, changes: list[Change]) -> Message:
    """The thread note for one batch of changes: what fired, what resolved."""
    fired = [c for c in changes if c.status == "firing"]
    gone = [c for c in changes if c.status == "resolved"]
    parts = []
    if fired:
        parts.append(f":red_circle: {len(fired)} firing")
    if gone:
        parts.append(f":large_green_circle: {len(gone)} resolved")
    head = ", ".join(parts) or "updated"
    if group.status == "resolved":
        head += " — the group is resolved"
    lines = [head]
    skip = [*group.common_labels, "alertname", "severity"]
    for change in changes[:10]:
        labels = _label_text(change.labels, skip=skip) or bk.escape(change.labels.get("alertname", "alert"))
        lines.append(f"• {change.status}: {_code(bk.truncate(labels, 200))}")
    if len(changes) > 10:
        lines.append(f"…and {len(changes) - 10} more")
    text = "\n".join(lines)
    return Message(text=text, blocks=[bk.section(text)])
