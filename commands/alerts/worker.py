"""The alert worker: turns stored notifications into Slack messages, and keeps silenced groups in
step with Alertmanager.

Why it cannot lose or double a notification: it takes pending rows, marks the batch it is about to
work on (``working``), applies it to the group's state, and hands the message to the messenger (the
durable outbox) with dedupe keys derived from the group, episode and batch; only then does it commit
the group and mark the rows done. Killed in between, the next worker redoes exactly that batch from
the same stored state, so the outbox's dedupe keys turn the second attempt into no-ops: each message
reaches Slack once. Silenced alerts send no "resolved" webhook, so the worker also asks Alertmanager
which silenced alerts still exist (``reconcile``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from bot import schema
from bot.errors import IntegrationError, UserError
from bot.state import as_utc, utcnow
from commands.alerts.groups import (
    GROUP_LOCK,
    SEVERITY_RANK,
    AlertGroup,
    Change,
    apply_notification,
    channel_for,
    highest_severity,
    load_group,
    load_groups,
    parse_time,
    recent_groups,
    refresh_status,
    save_group,
)
from commands.alerts.intake import URGENT, WAKE, yield_to_intake
from commands.alerts.render import render_changes, render_group
from commands.alerts.silences import ACK_BACKSTOP, alertmanager_for, expire_ack_silences, stale_acks
from commands.alerts.storm import StormDesk, active_storms, end_quiet_storms, next_to_post, refresh, show
from commands.alerts.waiting import WaitingLists, is_urgent

if TYPE_CHECKING:
    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.alerts")

# A crashed worker's lease blocks its successor this long at most.
LEASE_TTL_S = 15.0
NOTIFICATION_RETENTION = dt.timedelta(days=14)
GROUP_RETENTION = dt.timedelta(days=30)
# Groups folded per transaction; bounds how long a button press may wait for the group lock.
GROUPS_PER_ROUND = 25
# A storm's digest is rendered at most this often while groups keep changing. Rendering one takes
# tens of milliseconds of the interpreter that also takes in webhooks, and Slack takes an update of
# it only every few hundred milliseconds anyway (the outbox's update lane).
DIGEST_REFRESH_S = 0.5


class AlertWorker:
    """Turns stored notifications into messages, and keeps silenced groups in step with Alertmanager."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_interval: float = 0.5,
        reconcile_interval: float = 30.0,
        missing_confirmations: int = 2,
        settle: float = 1.0,
        max_wait: float = 10.0,
        owner: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.poll_interval = poll_interval
        # A group already in Slack is re-rendered once its notifications have paused for ``settle``
        # seconds (at most ``max_wait`` after the first): during a storm each group then costs one
        # update and one thread note instead of one per notification. New groups post at once.
        self.settle = settle
        self.max_wait = max_wait
        self.reconcile_interval = reconcile_interval
        self.missing_confirmations = missing_confirmations
        self.owner = owner or f"alerts-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing: dict[tuple[str, str], int] = {}
        self._next_reconcile = 0.0
        self._next_storm_check = 0.0
        self._lease_until = 0.0
        self._desk: StormDesk | None = None
        self._round: list[AlertGroup] = []
        self._waiting = WaitingLists(runtime)
        self._stale_storms: set[str] = set()  # digests a round left for the next one to refresh
        self._digest_refreshed: dict[str, float] = {}  # storm id -> when its digest was last rendered

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        WAKE.set()
        if self._thread:
            self._thread.join(timeout)
        self.runtime.store.release("alert-worker", self.owner)
        self._lease_until = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                did = self.run_once()
                # Housekeeping waits while an emergency or critical notification does: run_once first.
                if self._stale_storms and not URGENT.is_set():
                    self.refresh_stale_digests()
                if time.monotonic() >= self._next_storm_check and not URGENT.is_set():
                    self.check_storms()
                    self._next_storm_check = time.monotonic() + 1.0
                if time.monotonic() >= self._next_reconcile:
                    self.reconcile()
                    self._next_reconcile = time.monotonic() + self.reconcile_interval
            except Exception:
                log.exception("alert worker iteration failed; retrying")
                did = 0
            if not did:
                WAKE.wait(min(self.poll_interval, DIGEST_REFRESH_S) if self._stale_storms else self.poll_interval)
                WAKE.clear()
                # Webhooks wake us constantly in a storm; look at most every 50 ms, unless an
                # emergency or critical notification is waiting.
                if not URGENT.wait(0.05):
                    continue
                URGENT.clear()

    def run_once(self, limit: int = 500) -> int:
        """Process pending notifications; returns how many were handled."""
        store = self.runtime.store
        if not self._hold_lease():
            return 0
        URGENT.clear()  # everything stored until now is looked at in this pass
        t = schema.alert_notifications
        # Headers first: in a storm most rounds only find groups still settling, and the payloads
        # are the bulk of each row.
        with store.begin() as conn:
            heads = conn.execute(
                select(t.c.id, t.c.group_id, t.c.state, t.c.severity, t.c.received_at)
                .where(t.c.state.in_(("pending", "working"))).order_by(t.c.id).limit(limit)
            ).mappings().all()
        if not heads:
            return 0
        chosen = set(self._choose(heads))
        if not chosen:
            return 0
        # Emergency and critical groups get rounds of their own, first, without stepping aside for
        # the intake: their messages are queued before the warnings' payloads are even read.
        ids_by_group: dict[str, list[int]] = {}
        rank: dict[str, int] = {}  # group -> rank of its most severe chosen notification
        for r in heads:
            if r["id"] in chosen:
                ids_by_group.setdefault(r["group_id"], []).append(r["id"])
                rank[r["group_id"]] = min(rank.get(r["group_id"], 9), SEVERITY_RANK.get(r["severity"], 9))
        order = sorted(ids_by_group, key=lambda gid: (rank[gid], ids_by_group[gid][0]))
        urgent_groups = [gid for gid in order if rank[gid] <= SEVERITY_RANK["critical"]]
        rest = order[len(urgent_groups):]
        handled = 0
        step = GROUPS_PER_ROUND
        chunks = [(True, urgent_groups[i : i + step]) for i in range(0, len(urgent_groups), step)]
        chunks += [(False, rest[i : i + step]) for i in range(0, len(rest), step)]
        for urgent, group_ids in chunks:
            if self._stop.is_set() or (not urgent and URGENT.is_set()):
                return handled  # an urgent notification arrived: look again, it goes first
            # Payloads (the bulk of each row) are read a round at a time, so reading them never
            # holds up an emergency or critical notification that arrives meanwhile.
            ids = [i for gid in group_ids for i in ids_by_group[gid]]
            with store.begin() as conn:
                rows = conn.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.id)).mappings().all()
            batches: dict[str, list[Any]] = {gid: [] for gid in group_ids}
            for row in rows:
                batches[row["group_id"]].append(row)
            chunk = [batch for batch in batches.values() if batch]
            done = self._process_round(chunk, urgent=urgent)
            handled += sum(len(rows) for rows in chunk[:done])
            if done < len(chunk):
                return handled
        return handled

    def _choose(self, heads: Iterable[Any]) -> list[int]:
        """Ids of the rows to process this round, by group."""
        batches: dict[str, list[Any]] = {}
        for row in heads:
            batches.setdefault(row["group_id"], []).append(row)
        # A batch interrupted by a crash is redone exactly as it was, so its dedupe keys repeat.
        for gid, group_rows in batches.items():
            working = [r for r in group_rows if r["state"] == "working"]
            batches[gid] = working or group_rows
        for gid in self._settling(batches):
            del batches[gid]
        return [r["id"] for group_rows in batches.values() for r in group_rows]

    def _hold_lease(self) -> bool:
        """One worker across replicas, so two never render the same group from different states.

        Renewed well before it expires rather than taken per round: each take is a write transaction,
        and those compete with the webhook for SQLite's single writer.
        """
        if time.monotonic() < self._lease_until - LEASE_TTL_S / 2:
            return True
        if not self.runtime.store.hold(
            "alert-worker", self.owner, "turns alert notifications into Slack messages",
            dt.timedelta(seconds=LEASE_TTL_S),
        ):
            return False
        self._lease_until = time.monotonic() + LEASE_TTL_S
        return True

    def _settling(self, batches: dict[str, list[Any]]) -> list[str]:
        """Groups already in Slack whose notifications are still arriving: wait for them to pause."""
        if self.settle <= 0:
            return []
        g = schema.alert_groups
        with self.runtime.store.begin() as conn:
            firing = set(
                conn.execute(select(g.c.id).where(g.c.id.in_(list(batches)), g.c.status == "firing")).scalars()
            )
        now = utcnow()
        waiting = []
        for gid, rows in batches.items():
            if gid not in firing or any(r["state"] == "working" for r in rows):
                continue
            newest = max(as_utc(r["received_at"]) for r in rows)
            oldest = min(as_utc(r["received_at"]) for r in rows)
            if (now - newest).total_seconds() < self.settle and (now - oldest).total_seconds() < self.max_wait:
                waiting.append(gid)
        return waiting

    def _process_round(self, batches: list[list[Any]], *, urgent: bool = False) -> int:
        """Fold each group's batch into its state and queue its messages; record them all at once.

        Rows are marked ``working`` first and ``done`` with the group states in one transaction at the
        end: fewer write transactions leave SQLite's single writer free for the webhook, and a crash in
        between redoes exactly these batches (the outbox dedupe keys then make the redo a no-op).

        A round of warnings stops early when an emergency or critical notification arrives; the
        batches it did not reach go back to pending. Returns how many batches it handled.
        """
        runtime = self.runtime
        t = schema.alert_notifications
        pending = {r["id"] for rows in batches for r in rows if r["state"] == "pending"}
        if pending:
            # Not flushed by itself (bot/state.py: Store.begin): losing it in a power cut, with what
            # followed it, is a crash before the round, which the redo already covers.
            with runtime.store.begin(durable=False) as conn:
                conn.execute(update(t).where(t.c.id.in_(pending)).values(state="working"))
        done: list[AlertGroup] = []
        failed: list[int] = []
        with GROUP_LOCK:
            self._desk, self._round = StormDesk(runtime, defer_digests=urgent), done
            known = load_groups(runtime, [rows[0]["group_id"] for rows in batches])
            for rows in batches:
                self._desk.expect(self._new_post_channel(known.get(rows[0]["group_id"]), rows))
            handled: list[list[Any]] = []
            for rows in batches:
                if not urgent:
                    if handled and URGENT.is_set():
                        break
                    yield_to_intake()
                handled.append(rows)
                try:
                    done.append(self._fold(known.get(rows[0]["group_id"]), rows))
                except Exception:
                    # One bad group must not hold up every other alert: park its rows, loudly.
                    log.exception("alert group %s could not be processed; its notifications are parked as "
                                  "'failed' (ids %s)", rows[0]["group_id"][:8], [r["id"] for r in rows])
                    failed.extend(r["id"] for r in rows)
            rewritten = {g.ref for g in done if g.own_message}
            listed: set[str] = set()
            if urgent:
                # The list that first shows an urgent group goes out before the round's commit: a crash
                # in between redoes the round, and the list merely shows the same groups again.
                listed = {g.channel for g in done if g.channel and is_urgent(g)}
                self._waiting.refresh(listed, rewritten, unsaved=done)
                rewritten = set()
            # Not flushed by itself either: lost, the batches are redone, and the outbox's dedupe keys
            # turn the messages queued again into no-ops.
            with runtime.store.begin(durable=False) as conn:
                for group in done:
                    save_group(conn, group)
                ids = [r["id"] for rows in handled for r in rows if r["id"] not in failed]
                conn.execute(update(t).where(t.c.id.in_(ids)).values(state="done", processed_at=utcnow()))
                untouched = [r["id"] for rows in batches[len(handled):] for r in rows if r["id"] in pending]
                if untouched:
                    conn.execute(update(t).where(t.c.id.in_(untouched)).values(state="pending"))
                if failed:
                    conn.execute(update(t).where(t.c.id.in_(failed)).values(state="failed", processed_at=utcnow()))
            # The other lists (urgent groups of a warning round, lists that may lose a group whose own
            # post went out): after the commit, before the digests, whose rendering is the slow part.
            channels = self._waiting.channels_showing() - listed
            if not urgent:
                channels |= {g.channel for g in done if g.channel and is_urgent(g)}
            if channels:
                self._waiting.refresh(channels, rewritten)
            # The digests show the groups as committed just now; when another emergency or critical
            # notification is waiting, after its round (rendering a digest takes tens of ms).
            stale = self._desk.touched | self._stale_storms
            self._desk.touched = set() if urgent or URGENT.is_set() else self._due(stale)
            self._stale_storms = stale - self._desk.touched
            # An emergency or critical notification arriving meanwhile goes first; the digests wait.
            self._stale_storms |= self._desk.finish(interrupted=URGENT.is_set)
            self._desk, self._round = None, []
        for group in done:
            if stale_acks(group):
                expire_ack_silences(runtime, group.id, reason="the alerts resolved")
        return len(handled)

    def _new_post_channel(self, group: AlertGroup | None, rows: list[Any]) -> str | None:
        """The channel a batch will post a new group message in, if it starts a group or an episode."""
        firing = any(a["status"] == "firing" for r in rows for a in r["payload"]["alerts"])
        if group is not None and not (group.status == "resolved" and firing):
            return None
        env_name = rows[0]["environment"]
        env = self.runtime.config.environments.get(env_name) if env_name else None
        return channel_for(self.runtime.config, env, highest_severity(r["severity"] for r in rows))

    def _fold(self, group: AlertGroup | None, rows: list[Any]) -> AlertGroup:
        runtime = self.runtime
        gid = rows[0]["group_id"]
        env_name = rows[0]["environment"]
        env = runtime.config.environments.get(env_name) if env_name else None
        changes: list[Change] = []
        post_needed = False
        last_id = 0
        for row in rows:
            payload = row["payload"]
            starts_episode = group is not None and group.status == "resolved" and any(
                a["status"] == "firing" for a in payload["alerts"]
            )
            if starts_episode and group is not None and (changes or post_needed):
                # The previous episode ended within this batch: finish its message first.
                self._emit(group, changes, post_needed, last_id)
                changes, post_needed = [], False
            severity = highest_severity(
                [row["severity"], *([group.severity] if group and group.status == "firing" else [])]
            )
            group, new_changes, new_episode = apply_notification(
                group, payload, group_id=gid, env=env_name,
                channel=channel_for(runtime.config, env, severity),
                notification_id=row["id"], received_at=as_utc(row["received_at"]),
            )
            if new_episode:
                post_needed, changes = True, []
            else:
                changes.extend(new_changes)
            last_id = row["id"]
        assert group is not None
        self._emit(group, changes, post_needed, last_id)
        return group

    def _emit(self, group: AlertGroup, changes: list[Change], post_needed: bool, last_id: int) -> None:
        messenger = self.runtime.messenger
        if not group.channel:
            log.error("alert group %s (%s) has no channel: configure channels.alerts", group.short_id, group.name)
            return
        desk = self._desk or StormDesk(self.runtime)
        if post_needed:
            if not desk.admit(group, self._round):
                return  # the storm digest shows it
            message = render_group(group)
            messenger.post(group.channel, message, ref=group.ref, dedupe_key=f"alert-post:{group.id}:{group.episode}",
                           priority=group.priority)
            return
        desk.follow(group)
        if not group.own_message:
            return
        messenger.update(group.ref, render_group(group))
        ts_of = getattr(messenger, "ts_of", None)
        if changes and callable(ts_of) and ts_of(group.ref) is None:
            # The message has not reached Slack yet: it will show these changes when it does, and a
            # thread note about a message nobody has seen is noise (and costs a post slot).
            changes = []
        if changes:
            messenger.post(
                group.channel, render_changes(group, changes), thread_ref=group.ref,
                dedupe_key=f"alert-note:{group.id}:{group.episode}:{last_id}", priority=group.priority,
            )

    # -- keeping silenced groups honest --------------------------------------------------------

    def reconcile(self) -> None:
        """Silenced alerts send no resolved webhook: ask Alertmanager which of them still exist.

        Also retries expiring acknowledgement silences whose alerts resolved while Alertmanager was
        unreachable, and refreshes messages whose timed silence has run out.
        """
        if not self._hold_lease():
            return
        now = utcnow()
        self._prune(now)
        held_by_env: dict[str, set[Any] | None] = {}
        for group in recent_groups(self.runtime, since=now - ACK_BACKSTOP - dt.timedelta(days=1)):
            if not group.silences or group.environment is None:
                continue
            if stale_acks(group):
                expire_ack_silences(self.runtime, group.id, reason="the alerts resolved")
            if group.status != "firing":
                continue
            ran_out = [
                s for s in group.silences
                if s.get("state") == "active" and (parse_time(s.get("until")) or now) <= now
            ]
            if not group.active_silences(now) and not ran_out:
                continue
            if group.environment not in held_by_env:
                # One listing per environment and pass; None marks an Alertmanager we could not ask.
                try:
                    client = alertmanager_for(self.runtime, group.environment)
                    held_by_env[group.environment] = {a.get("fingerprint") for a in client.list_alerts()}
                except (IntegrationError, UserError) as exc:
                    log.info("reconcile in %s skipped: %s", group.environment, getattr(exc, "message", exc))
                    held_by_env[group.environment] = None
            held = held_by_env[group.environment]
            if held is None:
                continue
            gone = []
            for fingerprint in [fp for fp, a in group.alerts.items() if a["status"] == "firing"]:
                key = (group.id, fingerprint)
                if fingerprint in held:
                    self._missing.pop(key, None)
                    continue
                # One miss may be an Alertmanager restart; Prometheus re-sends within a minute.
                self._missing[key] = self._missing.get(key, 0) + 1
                if self._missing[key] >= self.missing_confirmations:
                    gone.append(fingerprint)
            if gone or ran_out:
                self._resolve_from_reconcile(group.id, gone, now)

    def _due(self, storms: set[str]) -> set[str]:
        """The digests among ``storms`` not refreshed in the last DIGEST_REFRESH_S; counted as
        refreshed from now on."""
        now = time.monotonic()
        due = {s for s in storms if now - self._digest_refreshed.get(s, 0.0) >= DIGEST_REFRESH_S}
        for storm_id in due:
            self._digest_refreshed[storm_id] = now
        return due

    def refresh_stale_digests(self, *, all_of_them: bool = False) -> None:
        """Digests that rounds left for later (urgent rounds, or refreshed too recently)."""
        with GROUP_LOCK:
            due = set(self._stale_storms) if all_of_them else self._due(self._stale_storms)
            for storm_id in sorted(due):
                if refresh(self.runtime, storm_id, interrupted=URGENT.is_set):
                    self._stale_storms.discard(storm_id)

    def check_storms(self) -> None:
        """End storms that are over (their digest then shows the summary) and, where the policy asks
        for it, post the rest of a storm's groups one by one once the channel's queue has drained."""
        if not self._hold_lease():
            return
        with GROUP_LOCK:
            # Posts went out since the last round: lists of groups no longer waiting come off.
            self._waiting.refresh(self._waiting.channels_showing())
            self.refresh_stale_digests(all_of_them=True)
            for storm_id in end_quiet_storms(self.runtime):
                refresh(self.runtime, storm_id)
                self._digest_refreshed.pop(storm_id, None)
            for storm in active_storms(self.runtime):
                group = next_to_post(self.runtime, storm)
                if group is None or not group.channel:
                    continue
                group.own_message = True
                self.runtime.messenger.post(
                    # Its own key: a post taken back when the storm began holds the usual one.
                    group.channel, render_group(group), ref=group.ref,
                    dedupe_key=f"alert-post:{group.id}:{group.episode}:after-storm", priority=group.priority,
                )
                with self.runtime.store.begin() as conn:
                    save_group(conn, group)

    def _prune(self, now: dt.datetime) -> None:
        """Keep the tables bounded: processed notifications for two weeks, resolved groups for 30 days.

        A notification older than that is no longer a plausible re-delivery, so its dedupe key can go.
        """
        n, g = schema.alert_notifications, schema.alert_groups
        with self.runtime.store.begin() as conn:
            conn.execute(delete(n).where(n.c.state == "done", n.c.processed_at < now - NOTIFICATION_RETENTION))
            conn.execute(delete(g).where(g.c.status == "resolved", g.c.updated_at < now - GROUP_RETENTION))

    def _resolve_from_reconcile(self, group_id: str, gone: list[str], now: dt.datetime) -> None:
        runtime = self.runtime
        with GROUP_LOCK:
            group = load_group(runtime, group_id)
            if group is None or group.status != "firing":
                return
            changes = []
            for fingerprint in gone:
                alert = group.alerts.get(fingerprint)
                if alert and alert["status"] == "firing":
                    alert["status"] = "resolved"
                    alert["endsAt"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
                    changes.append(Change(fingerprint, alert["labels"], "resolved", False))
                self._missing.pop((group_id, fingerprint), None)
            for silence in group.silences:
                if silence.get("state") == "active" and (parse_time(silence.get("until")) or now) <= now:
                    silence["state"] = "ended"
            refresh_status(group, now)
            group.updated_at = now
            with runtime.store.begin() as conn:
                save_group(conn, group)
            show(runtime, group)
            if group.channel and group.own_message:
                runtime.messenger.update(group.ref, render_group(group))
                if changes:
                    runtime.messenger.post(
                        group.channel, render_changes(group, changes), thread_ref=group.ref,
                        dedupe_key=f"alert-note:{group.id}:{group.episode}:reconcile:{now.timestamp():.0f}",
                        priority=group.priority,
                    )
        if stale_acks(group):
            expire_ack_silences(runtime, group_id, reason="the alerts resolved")
