"""Emergency and critical groups waiting for a post slot are shown at once on a message already in Slack.

Slack takes one ``chat.postMessage`` per channel per second. When several emergency or critical groups
start within the same second (the opening of a storm), all but the first would wait for their
channel's next post slots, and the storm digest itself needs one of those slots too. ``chat.update`` is
not held to that pace, so until their own messages (and the digest) reach Slack such groups are listed
under the newest alert message of the channel that is already there, or, when none is there yet, under
the first of them to be posted (rewriting its queued post, so one call shows them all). Once nothing
waits any more the list is taken off again. The own messages still follow in order of severity;
nothing here replaces them.

What a message currently carries is known to the worker's process only: a list left on a message by a
bot that died stays there (it names groups whose own messages the restarted bot posts anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot import blocks as bk
from bot import schema
from bot.outbox import PRIORITY_URGENT
from bot.reply import Message
from bot.state import utcnow
from commands.alerts.groups import SEVERITY_RANK, AlertGroup
from commands.alerts.render import render_group
from commands.alerts.storm import group_line, sort_groups

if TYPE_CHECKING:
    from bot.context import Runtime

_MAX_LINES = 20
# Above the digests' updates, and urgent in the outbox's update lane (it may spend the tokens kept for
# such updates): the list is the only place these groups are visible yet.
WAITING_PRIORITY = PRIORITY_URGENT


def is_urgent(group: AlertGroup) -> bool:
    return SEVERITY_RANK.get(group.severity, 9) <= SEVERITY_RANK["critical"]


class WaitingLists:
    """Which message of which channel carries a waiting list, and what it lists (the worker's)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._carriers: dict[str, tuple[str, str]] = {}  # carrier ref -> (channel, its group's id)
        self._shown: dict[str, tuple[str, ...]] = {}  # carrier ref -> ids of the groups it lists

    def channels_showing(self) -> set[str]:
        """Channels where a list is up: they need a look after posts went out, to take it off."""
        return {channel for channel, _ in self._carriers.values()}

    def refresh(
        self, channels: Iterable[str], rewritten: Iterable[str] = (), unsaved: Iterable[AlertGroup] = ()
    ) -> None:
        """Bring the lists of ``channels`` up to date. ``rewritten``: refs whose plain message was just
        queued again (a list they carried must be put back). ``unsaved``: groups of a worker round not
        committed yet, as they will be. Call under ``GROUP_LOCK``."""
        rewritten = set(rewritten)
        unsaved = list(unsaved)
        for channel in set(channels):
            self._refresh_channel(channel, rewritten, unsaved)

    def _refresh_channel(self, channel: str, rewritten: set[str], unsaved: list[AlertGroup]) -> None:
        runtime = self.runtime
        g, refs_t = schema.alert_groups, schema.message_refs
        with runtime.store.begin() as conn:
            by_id = {
                r["id"]: AlertGroup.from_row(r) for r in conn.execute(
                    select(g).where(g.c.channel == channel, g.c.status == "firing", g.c.own_message == 1)
                ).mappings()
            }
            for grp in unsaved:
                if grp.channel == channel and grp.status == "firing" and grp.own_message:
                    by_id[grp.id] = grp
                else:
                    by_id.pop(grp.id, None)
            groups = list(by_id.values())
            refs = [grp.ref for grp in groups]
            in_slack: set[str] = set()
            if refs:
                in_slack = set(conn.execute(select(refs_t.c.ref).where(refs_t.c.ref.in_(refs))).scalars())
            # A storm whose digest is in Slack shows its groups there (kept current by chat.update).
            storms = {grp.storm_id for grp in groups if grp.storm_id}
            by_digest = set()
            if storms:
                t = schema.alert_storms
                for storm_id, parts in conn.execute(select(t.c.id, t.c.parts).where(t.c.id.in_(storms))):
                    if parts and conn.execute(select(refs_t.c.ref).where(refs_t.c.ref == parts[0])).first():
                        by_digest.add(storm_id)
        waiting = sort_groups(
            grp for grp in groups if is_urgent(grp) and grp.ref not in in_slack and grp.storm_id not in by_digest
        )
        carriers = sorted((grp for grp in groups if grp.ref in in_slack), key=lambda grp: grp.first_seen)
        carrier = carriers[-1] if carriers and waiting else None
        if carrier is None and len(waiting) > 1:
            # Nothing of the channel in Slack yet (the opening second of a storm): the list goes on
            # the message that will be posted first. Its post not tried yet, the update rewrites it,
            # so that one call shows them all; already on its way, the update follows it at once.
            carrier = max(waiting, key=lambda grp: (grp.priority, -grp.first_seen.timestamp()))
            waiting = [grp for grp in waiting if grp.id != carrier.id]
        # A list on another message of the channel (an older carrier), or one nobody needs, comes off.
        for ref, (ch, gid) in list(self._carriers.items()):
            if ch != channel or (carrier is not None and ref == carrier.ref):
                continue
            old = next((grp for grp in groups if grp.id == gid), None)
            if old is not None and old.ref == ref:
                runtime.messenger.update(ref, render_group(old))
            self._carriers.pop(ref, None)
            self._shown.pop(ref, None)
        if carrier is None:
            return  # nothing waits, or only one group: its own message is the first to go
        ids = tuple(grp.id for grp in waiting)
        if self._shown.get(carrier.ref) == ids and carrier.ref not in rewritten:
            return
        runtime.messenger.update(carrier.ref, with_waiting(carrier, waiting), priority=WAITING_PRIORITY)
        self._shown[carrier.ref] = ids
        self._carriers[carrier.ref] = (channel, carrier.id)


def with_waiting(group: AlertGroup, waiting: list[AlertGroup]) -> Message:
    """The group's own message with the groups waiting for a post slot listed under it."""
    message = render_group(group)
    now = utcnow()
    lines = [group_line(grp, now) for grp in waiting[:_MAX_LINES]]
    if len(waiting) > _MAX_LINES:
        lines.append(f"…and {len(waiting) - _MAX_LINES} more")
    extra: list[dict[str, Any]] = [
        bk.divider(),
        bk.section("*Also firing in this channel* (their own messages follow, one a second):\n" + "\n".join(lines)),
    ]
    return Message(text=message.text, blocks=[*message.blocks, *extra])
