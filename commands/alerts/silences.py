"""Acknowledge, Silence and Unsilence: real Alertmanager silences with exact matchers on each
alert's labels. Acknowledgement silences last until the group resolves; the bot expires them then
(and retries from the worker's reconcile pass when Alertmanager was unreachable)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.errors import Conflict, IntegrationError, NotFound, UserError
from bot.reply import Message
from bot.state import utcnow
from bot.units import format_duration, parse_duration
from commands.alerts.groups import GROUP_LOCK, AlertGroup, load_group, save_group
from commands.alerts.render import render_group, slack_time
from commands.alerts.storm import show

if TYPE_CHECKING:
    from bot.context import Runtime
    from integrations.alertmanager import AlertmanagerClient

log = logging.getLogger("milvus_chatops.alerts")

# An acknowledgement lasts until the group resolves; this is only the backstop should the bot never
# see the resolution (Alertmanager needs an end time for every silence).
ACK_BACKSTOP = dt.timedelta(days=7)
MAX_SILENCE = dt.timedelta(days=30)
# Above this many firing alerts a group is silenced by its common labels (one silence) rather than
# one exact silence per alert.
MAX_PER_ALERT_SILENCES = 100


def parse_silence_duration(text: str) -> dt.timedelta:
    return parse_duration(text, minimum=dt.timedelta(minutes=1), maximum=MAX_SILENCE,
                          range_message="A silence lasts between 1 minute and 30 days.")



def alertmanager_for(runtime: Runtime, env_name: str | None) -> AlertmanagerClient:
    if not env_name:
        raise UserError(
            "This alert group has no environment, so the bot does not know which Alertmanager to ask.",
            hint="Add an `environment` label in the alert rules, or `prometheus_instance` in the bot's config.",
        )
    return runtime.services.alertmanager(runtime.environment(env_name))


def _group_lease(runtime: Runtime, group: AlertGroup, owner: str) -> None:
    if runtime.store.acquire(f"alert-group:{group.id}", owner, "changing silences", dt.timedelta(seconds=60)) is None:
        raise Conflict(
            f"Someone is changing alert group `{group.short_id}` right now.", hint="Try again in a few seconds."
        )


def _silence_targets(group: AlertGroup) -> list[tuple[list[str], dict[str, str]]]:
    """(fingerprints covered, exact label set) per silence to create."""
    firing = group.firing()
    if len(firing) <= MAX_PER_ALERT_SILENCES:
        return [([fp], dict(a["labels"])) for fp, a in group.alerts.items() if a["status"] == "firing"]
    return [([fp for fp, a in group.alerts.items() if a["status"] == "firing"], dict(group.common_labels))]


def _create_silences(
    runtime: Runtime, group: AlertGroup, *, kind: str, user_id: str, until: dt.datetime, comment: str
) -> list[dict[str, Any]]:
    from integrations.alertmanager import exact_matchers

    client = alertmanager_for(runtime, group.environment)
    created: list[dict[str, Any]] = []
    try:
        for fingerprints, labels in _silence_targets(group):
            if not labels:
                raise UserError("This group's alerts have no common labels to silence them by.")
            silence_id = client.create_silence(
                exact_matchers(labels), ends_at=until, created_by=user_id, comment=comment
            )
            created.append({
                "id": silence_id, "kind": kind, "by": user_id, "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "state": "active", "fingerprints": fingerprints, "episode": group.episode,
            })
    except Exception:
        # All or nothing: a half-silenced group would look silenced in Slack and still page people.
        for silence in created:
            try:
                client.expire_silence(silence["id"])
            except IntegrationError:
                log.warning("could not undo silence %s after a failed %s", silence["id"], kind)
        raise
    return created


def _firing_group(runtime: Runtime, group_id: str, episode: int | None = None) -> AlertGroup:
    group = load_group(runtime, group_id)
    if group is None:
        raise NotFound("This alert group is not known to the bot any more.")
    if episode is not None and episode != group.episode:
        raise UserError("This message is about an earlier firing of the group; use the newest message.")
    if group.status != "firing":
        raise UserError(f"Alert group `{group.short_id}` ({bk.escape(group.name)}) has already resolved.")
    return group


def _publish(runtime: Runtime, group: AlertGroup, note: str, dedupe_key: str) -> None:
    show(runtime, group)
    if not group.channel or not group.own_message:
        return
    runtime.messenger.update(group.ref, render_group(group))
    runtime.messenger.post(
        group.channel, Message(note, [bk.section(note)]), thread_ref=group.ref, dedupe_key=dedupe_key,
        priority=group.priority,  # the group's notes keep their order in its thread
    )


def acknowledge(runtime: Runtime, group_id: str, user_id: str, *, episode: int | None = None) -> AlertGroup:
    owner = f"ack-{uuid.uuid4().hex[:8]}"
    group = _firing_group(runtime, group_id, episode)
    if group.acked_by:
        raise Conflict(f"Alert group `{group.short_id}` was already acknowledged by <@{group.acked_by}>.")
    _group_lease(runtime, group, owner)
    try:
        group = _firing_group(runtime, group_id, episode)
        if group.acked_by:
            raise Conflict(f"Alert group `{group.short_id}` was already acknowledged by <@{group.acked_by}>.")
        now = utcnow()
        created = _create_silences(
            runtime, group, kind="ack", user_id=user_id, until=now + ACK_BACKSTOP,
            comment=f"Acknowledged in Slack by {user_id} (milvus-chatops group {group.short_id}); "
                    "expired by the bot when the alerts resolve",
        )
        with GROUP_LOCK:
            group = load_group(runtime, group_id) or group
            group.acked_by, group.acked_at = user_id, now
            group.silences.extend(created)
            with runtime.store.begin() as conn:
                save_group(conn, group)
            _publish(
                runtime, group,
                f":eyes: Acknowledged by <@{user_id}>: {len(created)} silence(s) in Alertmanager "
                "until the alerts resolve.",
                f"alert-ack:{group.id}:{group.episode}",
            )
        return group
    finally:
        runtime.store.release(f"alert-group:{group_id}", owner)


def silence(
    runtime: Runtime, group_id: str, user_id: str, duration: dt.timedelta, reason: str = "",
    *, episode: int | None = None,
) -> AlertGroup:
    owner = f"silence-{uuid.uuid4().hex[:8]}"
    group = _firing_group(runtime, group_id, episode)
    _group_lease(runtime, group, owner)
    try:
        group = _firing_group(runtime, group_id, episode)
        now = utcnow()
        until = now + duration
        comment = reason.strip() or f"Silenced in Slack for {format_duration(duration)}"
        created = _create_silences(
            runtime, group, kind="timed", user_id=user_id, until=until,
            comment=f"{comment} (by {user_id}, milvus-chatops group {group.short_id})",
        )
        with GROUP_LOCK:
            group = load_group(runtime, group_id) or group
            group.silences.extend(created)
            with runtime.store.begin() as conn:
                save_group(conn, group)
            why = f" Reason: {bk.escape(reason.strip())}" if reason.strip() else ""
            _publish(
                runtime, group,
                f":no_bell: Silenced by <@{user_id}> for {format_duration(duration)} "
                f"(until {slack_time(until)}).{why}",
                f"alert-silence:{group.id}:{created[0]['id']}",
            )
        return group
    finally:
        runtime.store.release(f"alert-group:{group_id}", owner)


def unsilence(runtime: Runtime, group_id: str, user_id: str) -> tuple[AlertGroup, int]:
    owner = f"unsilence-{uuid.uuid4().hex[:8]}"
    group = load_group(runtime, group_id)
    if group is None:
        raise NotFound("This alert group is not known to the bot any more.")
    if not group.active_silences():
        raise UserError(f"Alert group `{group.short_id}` has no active silence from the bot.")
    _group_lease(runtime, group, owner)
    try:
        group = load_group(runtime, group_id) or group
        active = group.active_silences()
        client = alertmanager_for(runtime, group.environment)
        expired_ids = []
        try:
            for s in active:
                client.expire_silence(s["id"])
                expired_ids.append(s["id"])
        finally:
            # Record what was expired even when a later one failed, so a retry does the rest.
            if expired_ids:
                with GROUP_LOCK:
                    group = load_group(runtime, group_id) or group
                    for s in group.silences:
                        if s["id"] in expired_ids:
                            s["state"] = "expired"
                    with runtime.store.begin() as conn:
                        save_group(conn, group)
                    _publish(
                        runtime, group,
                        f":bell: Unsilenced by <@{user_id}>: {len(expired_ids)} silence(s) expired in Alertmanager.",
                        f"alert-unsilence:{group.id}:{expired_ids[0]}",
                    )
        return group, len(expired_ids)
    finally:
        runtime.store.release(f"alert-group:{group_id}", owner)


def stale_acks(group: AlertGroup) -> list[dict[str, Any]]:
    """Acknowledgement silences whose alerts have resolved (this episode, or an earlier one)."""
    return [
        s for s in group.silences
        if s.get("kind") == "ack" and s.get("state") == "active"
        and (group.status == "resolved" or s.get("episode", group.episode) != group.episode)
    ]


def expire_ack_silences(runtime: Runtime, group_id: str, *, reason: str) -> int:
    """The acknowledgement ends with the alerts: expire its silences (retried by the worker on failure)."""
    group = load_group(runtime, group_id)
    if group is None:
        return 0
    targets = stale_acks(group)
    if not targets:
        return 0
    try:
        client = alertmanager_for(runtime, group.environment)
    except UserError:
        return 0
    done = []
    for s in targets:
        try:
            client.expire_silence(s["id"])
            done.append(s["id"])
        except IntegrationError as exc:
            # The rest would fail the same way (and each may wait for a timeout); reconcile retries.
            log.warning("could not expire acknowledgement silence %s of %s: %s", s["id"], group.short_id, exc.message)
            break
    if not done:
        return 0
    with GROUP_LOCK:
        group = load_group(runtime, group_id) or group
        for s in group.silences:
            if s["id"] in done:
                s["state"] = "expired"
        with runtime.store.begin() as conn:
            save_group(conn, group)
        show(runtime, group)
        if group.channel and group.own_message:
            runtime.messenger.update(group.ref, render_group(group))
    runtime.audit.record(
        user_id="alertmanager", action="alert unsilence", kind="webhook", environment=group.environment,
        arguments={"group": group.id, "silences": done}, outcome="ok",
        detail=f"acknowledgement silences expired because {reason}",
    )
    return len(done)
