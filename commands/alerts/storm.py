"""Storm mode: when a channel's alert messages would queue up at Slack's one post a second, the
channel gets one digest of the whole storm instead, kept current with ``chat.update`` (which is not
held to that pace).

- A storm starts in a channel when the posts already waiting for it would take longer than the
  policy's ``threshold_s`` (config ``alert_storm``, per channel). Every firing group of the channel
  joins the digest; groups whose own message has not been tried yet are taken back from the outbox
  (unless their severity keeps its own message: emergency and critical by default).
- New groups of the channel join the digest while the storm lasts; only the configured severities
  also get their own message, in order of severity (the outbox's priority).
- The digest lists every group (severity, alert name, environment, firing count, since when),
  firing ones by severity then resolved ones, with per-group Acknowledge and Silence (the same
  buttons' actions as the group messages: the same real silences) and Silence-all. When Block Kit's
  limits require it, the digest is split over several messages; no group is ever cut.
- The storm ends when all its groups have resolved, or when no group joined it for ``end_after_s``;
  the digest then says so with a summary (groups, duration, what was silenced by whom) and still
  shows the groups that fire on.
- Everything lives in the state store (``alert_storms`` and ``alert_groups.storm_id``) and the
  digest messages are named by refs with dedupe keys, so a restarted bot updates the same digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from bot import blocks as bk
from bot import schema
from bot.config import StormPolicy
from bot.reply import Message
from bot.state import as_utc, utcnow
from bot.units import format_duration
from commands.alerts.groups import SEVERITY_RANK, AlertGroup
from commands.alerts.render import SEVERITY_ICON, slack_time

if TYPE_CHECKING:
    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.alerts")

# Above every group message: the digest is the one message that shows the whole storm.
STORM_PRIORITY = 40
# Room left under Block Kit's size limit so the outbox's fitting never has to cut a part.
_PART_BUDGET = bk.MAX_TOTAL_BLOCK_CHARS - 600
_PART_BLOCKS = bk.MAX_BLOCKS - 4
_LINES_PER_SECTION = 12
_MAX_OPTIONS = 100  # a select menu holds at most 100 options


@dataclass
class Storm:
    id: str
    channel: str
    state: str
    started_at: dt.datetime
    last_joined_at: dt.datetime
    ended_at: dt.datetime | None = None
    parts: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)
    silenced_all: list[dict[str, Any]] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @classmethod
    def from_row(cls, row: Any) -> Storm:
        return cls(
            id=row["id"], channel=row["channel"], state=row["state"], started_at=as_utc(row["started_at"]),
            last_joined_at=as_utc(row["last_joined_at"]),
            ended_at=as_utc(row["ended_at"]) if row["ended_at"] else None,
            parts=list(row["parts"] or []), rendered=list(row["rendered"] or []),
            silenced_all=list(row["silenced_all"] or []),
        )

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id, "channel": self.channel, "state": self.state, "started_at": self.started_at,
            "last_joined_at": self.last_joined_at, "ended_at": self.ended_at, "parts": self.parts,
            "rendered": self.rendered, "silenced_all": self.silenced_all,
        }


# -- storage ------------------------------------------------------------------------------------


def load_storm(runtime: Runtime, storm_id: str) -> Storm | None:
    t = schema.alert_storms
    with runtime.store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == storm_id)).mappings().first()
    return Storm.from_row(row) if row else None


def active_storms(runtime: Runtime) -> list[Storm]:
    t = schema.alert_storms
    with runtime.store.begin() as conn:
        rows = conn.execute(select(t).where(t.c.state == "active").order_by(t.c.started_at)).mappings().all()
    return [Storm.from_row(r) for r in rows]


def active_storm_in(runtime: Runtime, channel: str) -> Storm | None:
    t = schema.alert_storms
    with runtime.store.begin() as conn:
        row = conn.execute(
            select(t).where(t.c.channel == channel, t.c.state == "active").order_by(t.c.started_at).limit(1)
        ).mappings().first()
    return Storm.from_row(row) if row else None


def save_storm(runtime: Runtime, storm: Storm) -> None:
    t = schema.alert_storms
    with runtime.store.begin() as conn:
        changed = conn.execute(update(t).where(t.c.id == storm.id).values(**storm.row())).rowcount
        if not changed:
            conn.execute(insert(t).values(**storm.row()))


def storm_groups(runtime: Runtime, storm_id: str) -> list[AlertGroup]:
    g = schema.alert_groups
    with runtime.store.begin() as conn:
        rows = conn.execute(select(g).where(g.c.storm_id == storm_id)).mappings().all()
    return sort_groups(AlertGroup.from_row(r) for r in rows)


def sort_groups(groups: Iterable[AlertGroup]) -> list[AlertGroup]:
    """Firing groups by severity (then by when they started), resolved ones after them."""
    return sorted(
        groups,
        key=lambda g: (g.status != "firing", SEVERITY_RANK.get(g.severity, 9), g.first_seen, g.name),
    )


# -- joining a storm (the worker, while it folds a round) ----------------------------------------


class StormDesk:
    """Decides, group by group in one worker round, who gets an own message and who the digest.

    Must run under ``GROUP_LOCK`` in the worker; the groups it changes are saved with the round, and
    the digests of ``touched`` storms are refreshed after that commit.
    """

    def __init__(self, runtime: Runtime, *, defer_digests: bool = False) -> None:
        self.runtime = runtime
        # In a round of emergency and critical groups the digest waits for the next round: rendering
        # it takes tens of milliseconds, and the next critical group's first message must not.
        self.defer_digests = defer_digests
        self.touched: set[str] = set()
        self._storms: dict[str, Storm | None] = {}
        self._expected: dict[str, int] = {}
        self._joined: set[str] = set()

    def expect(self, channel: str | None, posts: int = 1) -> None:
        """This round is about to post ``posts`` new group messages in ``channel``: they count as
        waiting already, so a burst that arrives in one round starts the storm before its first
        message is queued (and the digest, not that message, takes the channel's next slot)."""
        if channel:
            self._expected[channel] = self._expected.get(channel, 0) + posts

    def policy(self, channel: str) -> StormPolicy:
        return self.runtime.config.alert_storm.for_channel(channel)

    def admit(self, group: AlertGroup, others: Iterable[AlertGroup]) -> bool:
        """A new group (or episode) is about to be posted: True when it gets its own message.

        ``others`` are the groups of this round already folded (not yet saved): they join a storm
        that starts now as well.
        """
        channel = group.channel
        assert channel is not None
        policy = self.policy(channel)
        storm = self._storm(channel)
        expected = self._expected.get(channel, 1)
        self._expected[channel] = max(expected - 1, 0)
        if storm is None:
            group.storm_id, group.own_message = None, True
            waiting = self.runtime.messenger.backlog(channel) + expected
            if not policy.enabled or waiting <= policy.threshold_s:
                return True
            storm = self._start(channel, others, group)
        group.storm_id = storm.id
        self._joined.add(storm.id)
        self.touched.add(storm.id)
        group.own_message = group.severity in policy.individual
        return group.own_message

    def finish(self, interrupted: Callable[[], bool] | None = None) -> set[str]:
        """After the round's groups are committed: note who joined, and refresh the digests.

        Returns the storms whose digest was not refreshed because ``interrupted()`` said so.
        """
        if self._joined:
            t = schema.alert_storms
            with self.runtime.store.begin() as conn:
                conn.execute(update(t).where(t.c.id.in_(sorted(self._joined))).values(last_joined_at=utcnow()))
        left: set[str] = set()
        for storm_id in sorted(self.touched):
            if left or not refresh(self.runtime, storm_id, interrupted=interrupted):
                left.add(storm_id)
        return left

    def follow(self, group: AlertGroup) -> None:
        """A group of a storm changed: its digest needs a refresh."""
        if group.storm_id:
            self.touched.add(group.storm_id)

    def _storm(self, channel: str) -> Storm | None:
        if channel not in self._storms:
            self._storms[channel] = active_storm_in(self.runtime, channel)
        return self._storms[channel]

    def _start(self, channel: str, others: Iterable[AlertGroup], joining: AlertGroup) -> Storm:
        now = utcnow()
        storm = Storm(id=uuid.uuid4().hex, channel=channel, state="active", started_at=now, last_joined_at=now)
        save_storm(self.runtime, storm)
        self._storms[channel] = storm
        policy = self.policy(channel)
        in_round = {g.id: g for g in others if g.channel == channel and g.status == "firing"}
        g = schema.alert_groups
        with self.runtime.store.begin() as conn:
            rows = conn.execute(
                select(g).where(g.c.channel == channel, g.c.status == "firing", g.c.storm_id.is_(None))
            ).mappings().all()
        stored = [AlertGroup.from_row(r) for r in rows if r["id"] not in in_round]
        for group in [*in_round.values(), *stored]:
            group.storm_id = storm.id
            # What nobody has seen yet is shown by the digest instead of queueing behind the storm.
            if group.own_message and group.severity not in policy.individual and self.runtime.messenger.withdraw(
                group.ref
            ):
                group.own_message = False
        if stored:
            with self.runtime.store.begin() as conn:
                for group in stored:
                    conn.execute(
                        update(g).where(g.c.id == group.id)
                        .values(storm_id=group.storm_id, own_message=int(group.own_message))
                    )
        log.warning("alert storm in %s: %d group(s) so far; one digest replaces their messages",
                    channel, len(in_round) + len(stored) + 1)
        # Queue the digest now, ahead of any message this round is still to post: the round's end
        # brings it up to date (while it waits, by rewriting it).
        joining.storm_id = storm.id
        if not self.defer_digests:
            refresh(self.runtime, storm.id, [*in_round.values(), joining])
        return storm


# -- the digest ---------------------------------------------------------------------------------


def refresh(
    runtime: Runtime, storm_id: str, unsaved: Iterable[AlertGroup] = (),
    *, interrupted: Callable[[], bool] | None = None,
) -> bool:
    """Bring the storm's digest messages in line with its groups: post parts that do not exist yet,
    update the ones whose content changed. ``unsaved``: groups of a round not committed yet. Call
    under ``GROUP_LOCK``.

    Loading and rendering a storm of a hundred groups takes tens of milliseconds: when
    ``interrupted()`` turns true in between (an emergency or critical notification arrived), nothing
    is sent or saved and False is returned; the caller refreshes it later.
    """
    storm = load_storm(runtime, storm_id)
    if storm is None:
        return True
    by_id = {g.id: g for g in storm_groups(runtime, storm_id)}
    if interrupted is not None and interrupted():
        return False
    by_id.update({g.id: g for g in unsaved if g.storm_id == storm_id})
    groups = sort_groups(by_id.values())
    policy = runtime.config.alert_storm.for_channel(storm.channel)
    messages = render_digest(storm, groups, policy)
    if interrupted is not None and interrupted():
        return False
    messenger = runtime.messenger
    rendered = list(storm.rendered)
    for index, message in enumerate(messages):
        digest = hashlib.sha256(json.dumps([message.text, message.blocks], sort_keys=True).encode()).hexdigest()
        if index >= len(storm.parts):
            ref = f"alert-storm:{storm.id}:{index}"
            messenger.post(storm.channel, message, ref=ref, dedupe_key=ref, priority=STORM_PRIORITY)
            storm.parts.append(ref)
            rendered.append(digest)
        elif index >= len(rendered) or rendered[index] != digest:
            messenger.update(storm.parts[index], message)
            rendered[index:index + 1] = [digest]
    for index in range(len(messages), len(storm.parts)):
        # Fewer parts needed than posted (groups re-sorted): say so rather than leave stale lines.
        blank = Message("(this part of the storm digest is empty now)",
                        [bk.context("This part of the storm digest is empty now; see the first part.")])
        digest = "empty"
        if index >= len(rendered) or rendered[index] != digest:
            messenger.update(storm.parts[index], blank)
            rendered[index:index + 1] = [digest]
    storm.rendered = rendered
    save_storm(runtime, storm)
    return True


def group_line(group: AlertGroup, now: dt.datetime) -> str:
    env = bk.escape(group.environment or "no environment")
    if group.status == "resolved":
        line = f":white_check_mark: ~{bk.escape(group.severity)}~ *{bk.escape(group.name)}* · {env} · resolved"
        if group.resolved_at:
            line += f" {short_time(group.resolved_at)}"
        return line
    icon = SEVERITY_ICON.get(group.severity, ":large_blue_circle:")
    line = f"{icon} {bk.escape(group.severity)} *{bk.escape(group.name)}* · {env} · {len(group.firing())} firing"
    started = group.started_at()
    if started:
        line += f" · since {short_time(started)}"
    if group.acked_by:
        line += f" · :eyes: <@{bk.escape(group.acked_by)}>"
    timed = [s for s in group.active_silences(now) if s.get("kind") == "timed"]
    if timed:
        line += f" · :no_bell: <@{bk.escape(timed[-1].get('by', ''))}>"
    return line + f" · `{group.short_id}`"


def short_time(value: dt.datetime) -> str:
    """A compact Slack date token (time of day in the reader's zone): the digest has many lines."""
    value = as_utc(value)
    return f"<!date^{int(value.timestamp())}^{{time}}|{value:%H:%M} UTC>"


def _option(group: AlertGroup) -> dict[str, Any]:
    # The bare group id: a menu holds up to 100 of these and the message has a size limit.
    label = f"{group.name} ({group.environment or '-'})"
    return {"text": {"type": "plain_text", "text": bk.truncate(label, 75)}, "value": group.id}


def _group_actions(groups: list[AlertGroup], part: int, policy: StormPolicy, now: dt.datetime) -> list[dict[str, Any]]:
    """Acknowledge and Silence for each firing group of the part, as two menus (one block)."""
    elements = []
    to_ack = [g for g in groups if g.status == "firing" and not g.acked_by][:_MAX_OPTIONS]
    if to_ack:
        elements.append({
            "type": "static_select", "action_id": f"alert_storm_ack:{part}",
            "placeholder": {"type": "plain_text", "text": "Acknowledge a group…"},
            "options": [_option(g) for g in to_ack],
        })
    to_silence = [g for g in groups if g.status == "firing"][:_MAX_OPTIONS]
    if to_silence:
        elements.append({
            "type": "static_select", "action_id": f"alert_storm_silence:{part}",
            "placeholder": {"type": "plain_text", "text": f"Silence a group for {policy.silence_for}…"},
            "options": [_option(g) for g in to_silence],
        })
    return [bk.actions(*elements, block_id=f"storm-groups:{part}")] if elements else []


def _pack(groups: list[AlertGroup], lines: dict[str, str], head_chars: int) -> list[list[AlertGroup]]:
    """Split the groups into parts that each fit one message, whole groups only.

    Sizes are added up per group (its line and its two menu options) rather than re-rendering each
    candidate part: this runs after every worker round of a storm.
    """
    parts: list[list[AlertGroup]] = []
    current: list[AlertGroup] = []
    used = head_chars + 600  # the menus' and sections' own wrapping
    for group in groups:
        cost = len(json.dumps(lines[group.id])) + 2 * len(json.dumps(_option(group))) + 4
        blocks = -(-(len(current) + 1) // _LINES_PER_SECTION) + 1
        if current and (used + cost > _PART_BUDGET or blocks > _PART_BLOCKS or len(current) + 1 > _MAX_OPTIONS):
            parts.append(current)
            current, used = [], 900
        current.append(group)
        used += cost
    if current or not parts:
        parts.append(current)
    return parts


def _body_blocks(
    groups: list[AlertGroup], lines_of: dict[str, str], part: int, policy: StormPolicy, now: dt.datetime
) -> list[dict[str, Any]]:
    lines = [lines_of[g.id] for g in groups]
    step = _LINES_PER_SECTION
    blocks = [bk.section("\n".join(lines[i : i + step])) for i in range(0, len(lines), step)]
    return blocks + _group_actions(groups, part, policy, now)


def render_digest(storm: Storm, groups: list[AlertGroup], policy: StormPolicy) -> list[Message]:
    now = utcnow()
    firing = [g for g in groups if g.status == "firing"]
    by_severity = Counter(g.severity for g in firing)
    counts = ", ".join(
        f"{n} {sev}" for sev, n in sorted(by_severity.items(), key=lambda kv: SEVERITY_RANK.get(kv[0], 9))
    )
    head: list[dict[str, Any]]
    if storm.state == "active":
        title = f":cyclone: Alert storm: {len(firing)} group(s) firing"
        lines = [
            f"*{len(groups)}* group(s) since {slack_time(storm.started_at)}"
            + (f": {bk.escape(counts)} firing" if counts else "")
            + f", {len(groups) - len(firing)} resolved.",
            "One digest instead of a message per group, kept current. "
            + (f"{', '.join(bk.escape(s) for s in policy.individual)} groups also get their own message."
               if policy.individual else ""),
        ]
        head = [bk.header(title), bk.section("\n".join(lines))]
        if firing:
            head.append(bk.actions(
                bk.button(f"Silence all for {policy.silence_for}", "alert_storm_silence_all",
                          {"storm": storm.id}, style="danger",
                          confirm=("Silence the whole storm?",
                                   f"Every firing group of this storm is silenced in Alertmanager for "
                                   f"{policy.silence_for}.")),
                block_id=f"storm:{storm.short_id}",
            ))
    else:
        ended = storm.ended_at or now
        head = [
            bk.header(f":white_check_mark: Alert storm over: {len(groups)} group(s) in "
                      f"{format_duration(ended - storm.started_at)}"),
            bk.section(summary_text(storm, groups, ended)),
        ]
    head_chars = sum(len(json.dumps(b)) for b in head)
    line_of = {g.id: group_line(g, now) for g in groups}  # each once: sizing and rendering both need it
    parts = _pack(groups, line_of, head_chars)
    messages = []
    total = len(parts)
    for index, part_groups in enumerate(parts):
        blocks = list(head) if index == 0 else [
            bk.context(f":cyclone: Alert storm digest, part {index + 1} of {total}")
        ]
        blocks += _body_blocks(part_groups, line_of, index, policy, now)
        if index == 0 and total > 1:
            blocks.append(bk.context(f"Continued in {total - 1} more message(s) below."))
        state = "ALERT STORM" if storm.state == "active" else "ALERT STORM OVER"
        text = f"[{state}] {len(firing)} firing of {len(groups)} group(s)" + (
            f" (part {index + 1} of {total})" if total > 1 else ""
        )
        messages.append(Message(text=text, blocks=blocks))
    return messages


def summary_text(storm: Storm, groups: list[AlertGroup], ended: dt.datetime) -> str:
    firing = [g for g in groups if g.status == "firing"]
    severities = Counter(g.severity for g in groups)
    by_sev = ", ".join(
        f"{n} {s}" for s, n in sorted(severities.items(), key=lambda kv: SEVERITY_RANK.get(kv[0], 9))
    )
    lines = [
        f"From {slack_time(storm.started_at)} to {slack_time(ended)} "
        f"({format_duration(ended - storm.started_at)}): {len(groups)} group(s) ({bk.escape(by_sev)}), "
        f"{len(groups) - len(firing)} resolved, {len(firing)} still firing.",
    ]
    who: dict[tuple[str, str], set[str]] = {}
    for group in groups:
        for s in group.silences:
            if s.get("kind") in ("ack", "timed") and s.get("by"):
                what = "acknowledged" if s["kind"] == "ack" else "silenced"
                who.setdefault((str(s.get("by", "")), what), set()).add(group.id)
    bits = [f"<@{bk.escape(by)}> {what} {len(ids)} group(s)" for (by, what), ids in sorted(who.items())]
    for press in storm.silenced_all:
        bits.append(f"<@{bk.escape(press.get('by', ''))}> pressed Silence all ({press.get('groups', 0)} group(s))")
    lines.append("Silenced: " + ("; ".join(bits) if bits else "nothing") + ".")
    return "\n".join(lines)


# -- the end of a storm ---------------------------------------------------------------------------


def end_quiet_storms(runtime: Runtime, now: dt.datetime | None = None) -> list[str]:
    """End storms whose groups all resolved, or that no group joined for ``end_after_s``."""
    now = now or utcnow()
    ended = []
    for storm in active_storms(runtime):
        policy = runtime.config.alert_storm.for_channel(storm.channel)
        groups = storm_groups(runtime, storm.id)
        all_resolved = bool(groups) and all(g.status == "resolved" for g in groups)
        quiet = (now - storm.last_joined_at).total_seconds() >= policy.end_after_s
        if all_resolved or (quiet and runtime.messenger.backlog(storm.channel) < policy.threshold_s):
            storm.state, storm.ended_at = "ended", now
            save_storm(runtime, storm)
            ended.append(storm.id)
            log.warning("alert storm in %s ended after %s: %d group(s)", storm.channel,
                        format_duration(now - storm.started_at), len(groups))
    return ended


def show(runtime: Runtime, group: AlertGroup) -> None:
    """A group changed outside a worker round (a button, a reconcile): refresh its storm's digest."""
    if group.storm_id:
        refresh(runtime, group.storm_id)


def next_to_post(runtime: Runtime, storm: Storm) -> AlertGroup | None:
    """With ``post_rest``: the most severe firing group of the storm still without its own message,
    once the channel's queue has drained."""
    policy = runtime.config.alert_storm.for_channel(storm.channel)
    if not policy.post_rest or runtime.messenger.backlog(storm.channel) > 0:
        return None
    return next((g for g in storm_groups(runtime, storm.id) if g.status == "firing" and not g.own_message), None)
