"""The durable outbox: everything the bot says in Slack channels goes through here.

``post``/``update``/``upload`` only write a row (so they are as durable as the state store and never
block on Slack). One worker per deployment — it holds a lease, so replicas do not both send — drains
the rows per channel, highest ``priority`` first and in the order they were queued among equal
priorities (so a critical alert does not wait behind a queue of warnings):

- at most one ``chat.postMessage`` per channel per second (Slack's documented limit); updates are
  not held to it (``chat.update`` has its own, workspace-wide pace) but never overtake the post of
  the message they change, and a thread reply never overtakes its parent;
- a 429 pauses that channel for ``Retry-After`` seconds and retries the same row: nothing is dropped;
- 5xx answers, timeouts and connection errors are retried with exponential backoff, forever;
- a row is marked *in flight* before the call; if the process dies before recording the answer, the
  next worker looks the message up by its metadata ref in the channel's history before posting again,
  so a restart does not post twice;
- only answers that can never succeed (channel_not_found, not_in_channel, ...) end a row as failed.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
import time
import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import schema
from bot.blocks import fit_blocks, fit_text
from bot.metrics import OUTBOX_PENDING, SLACK_CALLS
from bot.redact import hush_request_logs
from bot.reply import Attachment, Message
from bot.state import Store, as_utc, utcnow

log = logging.getLogger("milvus_chatops.outbox")

PRIORITY_NORMAL = 0
POST_INTERVAL_S = 1.0  # chat.postMessage: about one per second per channel
UPDATE_INTERVAL_S = 0.25  # chat.update is Tier 3 (50+/min workspace-wide); spread across channels
# Updates may go back to back up to this many (refilled at UPDATE_INTERVAL_S each), so an update
# that shows an emergency does not wait behind the pace of the digest updates queued before it.
UPDATE_BURST = 20
# Updates below PRIORITY_URGENT leave this many of those tokens unspent: in a storm, routine updates
# (a digest, a group's growing alert count) would otherwise spend the burst, and the update that first
# shows a critical group would wait a quarter of a second per token.
URGENT_UPDATE_RESERVE = 10
PRIORITY_URGENT = 50
MAX_BACKOFF_S = 60.0
LEASE_TTL = dt.timedelta(seconds=30)
METADATA_EVENT = "milvus_chatops_message"
PERMANENT_ERRORS = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "no_text",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "missing_scope",
    "cant_update_message",
    "message_not_found",
    "restricted_action",
}


class Outbox:
    def __init__(self, store: Store, client: Any, *, owner: str | None = None) -> None:
        self.store = store
        self.client = client
        self.owner = owner or f"outbox-{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._channel_ready_at: dict[str, float] = {}
        self._update_tokens = float(UPDATE_BURST)
        self._update_refilled_at = time.monotonic()
        # The highest priority queued by this process since the pass under way was planned.
        self._queued_since_plan = PRIORITY_NORMAL - 1

    # -- Messenger -----------------------------------------------------------------------------

    def post(
        self,
        channel: str,
        message: Message,
        *,
        ref: str | None = None,
        thread_ref: str | None = None,
        dedupe_key: str | None = None,
        priority: int = PRIORITY_NORMAL,
    ) -> str:
        ref = ref or f"msg:{uuid.uuid4().hex}"
        payload = {"text": fit_text(message.text), "blocks": fit_blocks(message.blocks)}
        return self._enqueue(
            channel, "post", ref, payload, thread_ref=thread_ref, dedupe_key=dedupe_key, priority=priority
        )

    def update(self, ref: str, message: Message, *, priority: int | None = None) -> None:
        payload = {"text": fit_text(message.text), "blocks": fit_blocks(message.blocks)}
        t = schema.outbox
        # One transaction: in a storm each commit waits its turn behind the other writers. Not flushed
        # by itself (see _enqueue).
        with self.store.begin(durable=False) as conn:
            # Not tried yet: the post itself goes out with the new content, one Slack call fewer.
            rewritten = conn.execute(
                update(t).where(t.c.ref == ref, t.c.op == "post", t.c.state == "pending", t.c.attempts == 0)
                .values(payload=payload)
            ).rowcount
            if rewritten:
                return
            # An update is as urgent as the message it changes, unless the caller knows better.
            channel, post_priority = self._post_of(ref, conn)
            priority = post_priority if priority is None else priority
            _insert_row(conn, channel, "update", ref, payload, priority=priority)
        self._queued(priority)

    def upload(
        self, channel: str, files: list[Attachment], *, thread_ref: str | None = None, comment: str = ""
    ) -> None:
        payload = {
            "comment": comment,
            "files": [
                {
                    "filename": f.filename,
                    "title": f.title or f.filename,
                    "content": base64.b64encode(f.content).decode(),
                }
                for f in files
            ],
        }
        self._enqueue(channel, "upload", f"upload:{uuid.uuid4().hex}", payload, thread_ref=thread_ref)

    def whisper(self, channel: str | None, user: str, message: Message) -> None:
        """An ephemeral message to ``user``, sent now rather than queued: the queue is a table, and
        what is whispered (a generated password) must not be written anywhere."""
        with hush_request_logs():
            if channel:
                self.client.chat_postEphemeral(channel=channel, user=user, text=fit_text(message.text),
                                               blocks=fit_blocks(message.blocks) or None)
            else:
                self.client.chat_postMessage(channel=user, text=fit_text(message.text),
                                             blocks=fit_blocks(message.blocks) or None, unfurl_links=False)

    def _enqueue(
        self,
        channel: str,
        op: str,
        ref: str,
        payload: dict[str, Any],
        *,
        thread_ref: str | None = None,
        dedupe_key: str | None = None,
        priority: int = PRIORITY_NORMAL,
    ) -> str:
        try:
            # Not flushed by itself (Store.begin): nothing outside learns of a row before its send, and a
            # post's attempt is flushed before its call, with every row queued before it. Lost in a
            # power cut, the row goes with everything committed after it, as in a crash (an update
            # already sent is then queued and sent again, which changes nothing).
            with self.store.begin(durable=False) as conn:
                _insert_row(conn, channel, op, ref, payload, thread_ref=thread_ref, dedupe_key=dedupe_key,
                            priority=priority)
        except IntegrityError:
            if dedupe_key is None:
                raise
            with self.store.begin() as conn:
                existing = conn.execute(
                    select(schema.outbox.c.ref).where(schema.outbox.c.dedupe_key == dedupe_key)
                ).first()
            return existing[0] if existing else ref
        self._queued(priority)
        return ref

    def _queued(self, priority: int) -> None:
        # An unlocked max: a lost race only means the next pass, not this one, sends the row first.
        self._queued_since_plan = max(self._queued_since_plan, priority)
        self._wake.set()

    def _post_of(self, ref: str, conn: Any) -> tuple[str, int]:
        """(channel, priority) of the post that created the message ``ref``."""
        t = schema.outbox
        row = conn.execute(
            select(t.c.channel, t.c.priority).where(t.c.ref == ref, t.c.op == "post").order_by(t.c.id).limit(1)
        ).first()
        if row is None:
            raise KeyError(f"no message was posted under ref {ref}")
        return str(row[0]), int(row[1])

    def ts_of(self, ref: str) -> tuple[str, str] | None:
        """(channel, ts) of a message once Slack has it."""
        t = schema.message_refs
        with self.store.begin() as conn:
            row = conn.execute(select(t.c.channel, t.c.ts).where(t.c.ref == ref)).first()
        return (row[0], row[1]) if row else None

    def backlog(self, channel: str) -> int:
        """Posts and uploads still waiting for ``channel``: each costs a second of Slack's pace."""
        t = schema.outbox
        with self.store.begin() as conn:
            count = conn.execute(
                select(func.count()).select_from(t)
                .where(t.c.state == "pending", t.c.channel == channel, t.c.op != "update")
            ).scalar_one()
        return int(count)

    def withdraw(self, ref: str) -> bool:
        """Take back a post that has not been tried yet, with its updates and thread replies.

        True when nothing of it can reach Slack any more; False when it already went (or may be on
        its way: a row the worker has started counts as sent).
        """
        t = schema.outbox
        with self.store.begin() as conn:
            taken = conn.execute(
                update(t).where(t.c.ref == ref, t.c.op == "post", t.c.state == "pending", t.c.attempts == 0)
                .values(state="done", last_error="withdrawn")
            ).rowcount
            if taken:
                conn.execute(
                    update(t).where(t.c.state == "pending", (t.c.ref == ref) | (t.c.thread_ref == ref))
                    .values(state="done", last_error="withdrawn")
                )
        return bool(taken)

    def pending(self) -> int:
        with self.store.begin() as conn:
            count = conn.execute(
                select(func.count()).select_from(schema.outbox).where(schema.outbox.c.state == "pending")
            ).scalar_one()
        OUTBOX_PENDING.set(count)
        return int(count)

    # -- worker --------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self.store.release("outbox-worker", self.owner)

    def _run(self) -> None:
        lease_until = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= lease_until - 10:
                    if self._renew_lease():
                        lease_until = time.monotonic() + LEASE_TTL.total_seconds()
                    else:
                        self._wake.wait(5)
                        continue
                delay = self.drain_once()
            except Exception:
                log.exception("outbox worker iteration failed; retrying")
                delay = 1.0
            self._wake.wait(timeout=min(delay, 1.0))
            self._wake.clear()

    def _renew_lease(self) -> bool:
        return self.store.hold("outbox-worker", self.owner, "drains the Slack outbox", LEASE_TTL)

    def drain_once(self) -> float:
        """Send every row that may be sent now; returns seconds until the next one could be."""
        t = schema.outbox
        # Plan on row headers only; payloads (blocks, file contents) are read for the rows sent now.
        # Highest priority first, so a critical message queued behind a long backlog is in the window.
        self._queued_since_plan = PRIORITY_NORMAL - 1
        header = [t.c.id, t.c.channel, t.c.op, t.c.ref, t.c.thread_ref, t.c.attempts, t.c.not_before,
                  t.c.created_at, t.c.priority]
        with self.store.begin() as conn:
            rows: list[dict[str, Any]] = [
                dict(row)
                for row in conn.execute(
                    select(*header).where(t.c.state == "pending")
                    .order_by(t.c.priority.desc(), t.c.id).limit(500)
                ).mappings()
            ]
        OUTBOX_PENDING.set(len(rows))
        if not rows:
            return 1.0
        superseded: list[int] = []
        latest_update: dict[str, int] = {}
        for row in rows:
            if row["op"] == "update":
                latest_update[row["ref"]] = max(row["id"], latest_update.get(row["ref"], 0))
        live = []
        for row in rows:
            if row["op"] == "update" and latest_update[row["ref"]] != row["id"] and row["attempts"] == 0:
                superseded.append(row["id"])  # a later update of the same message replaces this one
            else:
                live.append(row)
        if superseded:
            with self.store.begin(durable=False) as conn:
                conn.execute(update(t).where(t.c.id.in_(superseded)).values(state="done", last_error="superseded"))
        unposted = self._unposted_refs(
            {r["ref"] for r in live if r["op"] == "update"} | {r["thread_ref"] for r in live if r["thread_ref"]}
        )
        # One post lane per channel (its head waits for the channel's pace, so among equal priorities
        # nothing overtakes), and one lane for updates.
        heads: dict[str, dict[str, Any]] = {}
        updates: list[dict[str, Any]] = []
        for row in live:  # already in (priority desc, id) order
            if row["op"] == "update":
                if row["ref"] not in unposted:
                    updates.append(row)
            elif not (row["thread_ref"] and row["thread_ref"] in unposted):
                heads.setdefault(row["channel"], row)
        now_mono = time.monotonic()
        now = utcnow()
        next_delay = 1.0
        # Updates first: they are what shows an urgent group at once while its post waits for the
        # channel's pace, and each is one quick call.
        for row in updates:
            wait = self._wait_for(row["channel"], row, now_mono, now)
            if wait > 0:
                next_delay = min(next_delay, wait)
                if self._update_tokens < _tokens_needed(row):
                    break  # the lane's pace, not this row's backoff: the rest (no more urgent) wait as well
                continue
            if self._queued_since_plan > row["priority"]:
                return 0.0  # something more urgent was queued meanwhile: plan again, it goes first
            self._update_tokens -= 1
            self._send(row)
            next_delay = 0.0
        for row in heads.values():
            wait = self._wait_for(row["channel"], row, now_mono, now)
            if wait > 0:
                next_delay = min(next_delay, wait)
                continue
            if self._queued_since_plan > row["priority"]:
                return 0.0
            self._send(row)
            next_delay = 0.0
        return next_delay

    def _unposted_refs(self, refs: set[str]) -> set[str]:
        """Refs whose post is still waiting: their updates and thread replies must wait too."""
        if not refs:
            return set()
        t = schema.outbox
        with self.store.begin() as conn:
            return set(
                conn.execute(
                    select(t.c.ref).where(t.c.ref.in_(refs), t.c.op == "post", t.c.state == "pending")
                ).scalars()
            )

    def _wait_for(self, channel: str, row: dict[str, Any], now_mono: float, now: dt.datetime) -> float:
        backoff = (as_utc(row["not_before"]) - now).total_seconds()
        if row["op"] == "update":
            elapsed = now_mono - self._update_refilled_at
            self._update_tokens = min(float(UPDATE_BURST), self._update_tokens + elapsed / UPDATE_INTERVAL_S)
            self._update_refilled_at = now_mono
            need = _tokens_needed(row)
            rate = (need - self._update_tokens) * UPDATE_INTERVAL_S if self._update_tokens < need else 0.0
        else:
            rate = self._channel_ready_at.get(channel, 0.0) - now_mono
        return max(backoff, rate, 0.0)

    def _send(self, row: dict[str, Any]) -> None:
        from slack_sdk.errors import SlackApiError

        t = schema.outbox
        # A post's attempt is flushed before the call: after a power cut, its next attempt must look
        # for the message first or it would post it twice. Sending an update again changes nothing.
        with self.store.begin(durable=row["op"] != "update") as conn:
            started = conn.execute(
                update(t).where(t.c.id == row["id"], t.c.state == "pending").values(attempts=t.c.attempts + 1)
            ).rowcount
            # Read after the attempt is counted: from here on ``update`` queues a row instead of
            # rewriting this one.
            row["payload"] = conn.execute(select(t.c.payload).where(t.c.id == row["id"])).scalar_one()
        if not started:
            return  # withdrawn since it was planned
        method = {"post": "chat.postMessage", "update": "chat.update", "upload": "files.upload_v2"}[row["op"]]
        try:
            ts = self._call(row)
        except _Undeliverable as exc:
            self._finish(row, "failed", str(exc))
            return
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if status == 429:
                retry_after = retry_after_seconds(header_value(exc.response.headers, "Retry-After"))
                self._pause(row, retry_after, f"rate limited, retry after {retry_after:g}s")
                SLACK_CALLS.labels(method, "ratelimited").inc()
            elif error in PERMANENT_ERRORS:
                self._finish(row, "failed", error)
                SLACK_CALLS.labels(method, "failed").inc()
                log.error("outbox row %s to %s failed for good: %s", row["id"], row["channel"], error)
            else:
                self._pause(row, _backoff(row["attempts"]), f"HTTP {status} {error or ''}".strip())
                SLACK_CALLS.labels(method, "retry").inc()
            return
        except Exception as exc:  # timeouts, refused connections: Slack may be back soon
            self._pause(row, _backoff(row["attempts"]), type(exc).__name__)
            SLACK_CALLS.labels(method, "retry").inc()
            return
        SLACK_CALLS.labels(method, "ok").inc()
        # Not flushed by itself (Store.begin): the attempt was, before the call, so a row whose answer
        # a power cut loses stays in flight, and its next attempt looks for the message first.
        with self.store.begin(durable=False) as conn:
            if row["op"] == "post" and ts:
                existing = conn.execute(
                    select(schema.message_refs.c.ref).where(schema.message_refs.c.ref == row["ref"])
                ).first()
                if existing is None:
                    conn.execute(insert(schema.message_refs).values(ref=row["ref"], channel=row["channel"], ts=ts))
            conn.execute(update(t).where(t.c.id == row["id"]).values(state="done", last_error=None))

    def _call(self, row: dict[str, Any]) -> str | None:
        payload = row["payload"]
        channel = row["channel"]
        thread_ts = None
        if row["thread_ref"]:
            parent = self.ts_of(row["thread_ref"])
            thread_ts = parent[1] if parent else None
        if row["op"] == "post":
            self._channel_ready_at[channel] = time.monotonic() + POST_INTERVAL_S
            if row["attempts"] > 0:
                found = self._find_posted(channel, row["ref"], row["created_at"])
                if found:
                    return found
            response = self.client.chat_postMessage(
                channel=channel,
                text=payload["text"],
                blocks=payload["blocks"] or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"ref": row["ref"]}},
            )
            # Counted from the answer as well: a slow call must not bring the next one closer than
            # a second to it on Slack's side.
            self._channel_ready_at[channel] = time.monotonic() + POST_INTERVAL_S
            return str(response["ts"])
        if row["op"] == "update":
            target = self.ts_of(row["ref"])
            if target is None:
                # An update waits for its post (drain_once), so the post ended for good.
                raise _Undeliverable(f"message {row['ref']} never reached Slack")
            self.client.chat_update(
                channel=target[0], ts=target[1], text=payload["text"], blocks=payload["blocks"] or []
            )
            return None
        self._channel_ready_at[channel] = time.monotonic() + POST_INTERVAL_S
        self.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            initial_comment=payload.get("comment") or None,
            file_uploads=[
                {"content": base64.b64decode(f["content"]), "filename": f["filename"], "title": f["title"]}
                for f in payload["files"]
            ],
        )
        return None

    def _find_posted(self, channel: str, ref: str, created_at: dt.datetime) -> str | None:
        """Did an earlier attempt reach Slack before we died? Look for our ref in the metadata."""
        try:
            response = self.client.conversations_history(
                channel=channel, oldest=str(as_utc(created_at).timestamp() - 5), include_all_metadata=True, limit=200
            )
        except Exception:
            log.warning("could not check %s for an earlier post of %s; posting again", channel, ref)
            return None
        for message in response.get("messages", []):
            metadata = message.get("metadata") or {}
            if metadata.get("event_payload", {}).get("ref") == ref:
                return str(message["ts"])
        return None

    def _pause(self, row: dict[str, Any], seconds: float, reason: str) -> None:
        t = schema.outbox
        with self.store.begin(durable=False) as conn:
            conn.execute(
                update(t)
                .where(t.c.id == row["id"])
                .values(not_before=utcnow() + dt.timedelta(seconds=seconds), last_error=reason)
            )
        if row["op"] != "update":
            self._channel_ready_at[row["channel"]] = time.monotonic() + seconds
        log.info("outbox row %s to %s delayed %.1fs: %s", row["id"], row["channel"], seconds, reason)

    def _finish(self, row: dict[str, Any], state: str, error: str | None) -> None:
        t = schema.outbox
        with self.store.begin(durable=False) as conn:
            conn.execute(update(t).where(t.c.id == row["id"]).values(state=state, last_error=error))


def _insert_row(
    conn: Any,
    channel: str,
    op: str,
    ref: str,
    payload: dict[str, Any],
    *,
    thread_ref: str | None = None,
    dedupe_key: str | None = None,
    priority: int,
) -> None:
    """Queue one row, due now, in the caller's transaction."""
    now = utcnow()
    conn.execute(
        insert(schema.outbox).values(
            channel=channel, op=op, ref=ref, thread_ref=thread_ref, payload=payload, dedupe_key=dedupe_key,
            state="pending", attempts=0, not_before=now, created_at=now, priority=priority,
        )
    )


class _Undeliverable(Exception):
    pass


# A Retry-After beyond this is obeyed only this far: the answer may be wrong, and a row parked for a
# day looks lost. Slack itself asks for seconds to a minute.
MAX_RETRY_AFTER_S = 900.0


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110), never less
    than a second (no hot loop on "0") nor more than MAX_RETRY_AFTER_S; ``default`` when absent or garbled."""
    import email.utils
    import math

    if not value or not value.strip():
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - utcnow()).total_seconds()
    if math.isnan(seconds):
        return default
    return min(max(seconds, 1.0), MAX_RETRY_AFTER_S)


def header_value(headers: Any, name: str) -> str | None:
    """Header lookup that does not depend on the client's capitalisation (slack_sdk keeps the server's)."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def _tokens_needed(row: dict[str, Any]) -> float:
    """Tokens the update lane must hold before ``row`` may go (it spends one)."""
    return 1.0 if row["priority"] >= PRIORITY_URGENT else 1.0 + URGENT_UPDATE_RESERVE


def _backoff(attempts: int) -> float:
    return float(min(MAX_BACKOFF_S, 2 ** max(attempts - 1, 0)))
