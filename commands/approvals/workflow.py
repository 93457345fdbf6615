"""Four-eyes approvals for risky work (deploys, restores): request, approve, reject, expire, execute once.

A capability registers what to run once a request is approved (``registry.executor(kind, fn)``) and asks
for approval with ``Approvals(runtime).request(...)``. Everything lives in the state store
(``approval_requests`` / ``approval_votes``) and buttons carry only the request id, so a pending
request survives a restart and stays clickable.

Rules, enforced here and nowhere else:
- only the environment's approvers (users or user groups) may approve, never the requester;
- ``approvals_required`` distinct approvers are needed; a double click counts once (primary key);
- the payload is hashed (sha256 of canonical JSON) and the hash is shown; executors recompute what
  they would apply and call ``check_payload``, so an approval never covers different values;
- the request runs at most once: a claim plus a conditional ``pending -> executing`` update decide
  the single winner among double clicks, simultaneous approvers and replayed payloads;
- an expired request cannot be approved; ``expire_due`` (scheduled every minute, and checked on each
  click) marks it and updates the message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import blocks as bk
from bot import schema
from bot.access import Identity
from bot.errors import AccessDenied, Conflict, NotFound, UserError, describe_failure
from bot.reply import Attachment, Message, Reply
from bot.state import as_utc, utcnow

if TYPE_CHECKING:
    from bot.context import Context, Runtime

log = logging.getLogger("milvus_chatops.approvals")

APPROVE_ACTION = "approval_approve"
REJECT_ACTION = "approval_reject"
REJECT_MODAL = "approval_reject_reason"
REASON_FIELD = "reason"


FINAL_STATES = ("done", "failed", "rejected", "expired", "stale")
# A request still "executing" this long after its final approval was left by a bot that died.
INTERRUPTED_AFTER = dt.timedelta(hours=6)
STATE_ICON = {
    "pending": ":hourglass_flowing_sand:",
    "executing": ":gear:",
    "done": ":white_check_mark:",
    "failed": ":x:",
    "rejected": ":no_entry_sign:",
    "expired": ":alarm_clock:",
    "stale": ":warning:",
}


def payload_hash(payload: Any) -> str:
    """sha256 of the canonical JSON: same content, same hash, whatever the key order."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class StaleApproval(Conflict):
    """What would be applied now differs from what was approved."""


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    kind: str
    environment: str
    title: str
    requester: str
    payload: dict[str, Any]
    payload_hash: str
    summary_blocks: list[dict[str, Any]]
    approvals_required: int
    state: str
    channel: str | None
    message_ref: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    result: str | None = None
    approvers: tuple[str, ...] = field(default=())

    @property
    def short_hash(self) -> str:
        return self.payload_hash[:12]

    @property
    def expired(self) -> bool:
        return self.state == "pending" and self.expires_at <= utcnow()

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "environment": self.environment,
            "title": self.title,
            "requester": self.requester,
            "state": self.state,
            "payload_hash": self.payload_hash,
            "approvals_required": self.approvals_required,
            "approved_by": list(self.approvers),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "decided_by": self.decided_by,
            "reason": self.reason,
            "result": self.result,
        }


def _row_to_request(row: Any, approvers: Iterable[str]) -> ApprovalRequest:
    return ApprovalRequest(
        id=row["id"],
        kind=row["kind"],
        environment=row["environment"],
        title=row["title"],
        requester=row["requester"],
        payload=row["payload"],
        payload_hash=row["payload_hash"],
        summary_blocks=row["summary_blocks"],
        approvals_required=row["approvals_required"],
        state=row["state"],
        channel=row["channel"],
        message_ref=row["message_ref"],
        created_at=as_utc(row["created_at"]),
        expires_at=as_utc(row["expires_at"]),
        decided_at=as_utc(row["decided_at"]) if row["decided_at"] else None,
        decided_by=row["decided_by"],
        reason=row["reason"],
        result=row["result"],
        approvers=tuple(approvers),
    )


def _slack_time(when: dt.datetime) -> str:
    """A timestamp every reader sees in their own time zone."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


# Background executions by request id, so a console run or a test can wait for them to finish.
_RUNNING: dict[str, threading.Thread] = {}
_RUNNING_LOCK = threading.Lock()


class Approvals:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- reading ---------------------------------------------------------------------------------

    def get(self, request_id: str) -> ApprovalRequest:
        request_id = request_id.strip().lower()
        t, v = schema.approval_requests, schema.approval_votes
        with self.runtime.store.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == request_id)).mappings().first()
            if row is None:
                raise NotFound(
                    f"There is no approval request `{bk.escape(request_id)}`.",
                    hint="The id is in the approval message, e.g. `/milvus approve 3f9a1c2e`.",
                )
            voters = conn.execute(
                select(v.c.user_id)
                .where(v.c.request_id == request_id, v.c.vote == "approve", v.c.payload_hash == row["payload_hash"])
                .order_by(v.c.at)
            ).scalars().all()
        return _row_to_request(row, voters)

    def pending(self, env: str | None = None) -> list[ApprovalRequest]:
        t = schema.approval_requests
        query = select(t.c.id).where(t.c.state == "pending").order_by(t.c.created_at)
        if env:
            query = query.where(t.c.environment == env)
        with self.runtime.store.begin() as conn:
            ids = conn.execute(query).scalars().all()
        return [self.get(i) for i in ids]

    # -- asking ----------------------------------------------------------------------------------

    def request(
        self,
        ctx: Context,
        *,
        kind: str,
        env: str,
        title: str,
        summary_blocks: list[dict[str, Any]],
        payload: dict[str, Any],
        files: list[Attachment] | None = None,
    ) -> ApprovalRequest:
        """Store a request and post it with Approve/Reject buttons to the env's approvals channel.

        ``files`` (the complete diff, say) go into the request's thread, so approvers can read
        everything that the message itself has no room for.
        """
        if kind not in self.runtime.registry.executors:
            raise RuntimeError(f"no approval executor registered for kind {kind!r}")
        environment = self.runtime.environment(env)
        policy = environment.approval
        channels = self.runtime.config.channels_for(environment)
        channel = channels.approvals or channels.ops or ctx.channel
        if not channel:
            raise UserError(
                f"`{env}` needs approval but has no approvals channel.",
                hint="Set `channels.approvals` for the environment (or globally) in the bot's config.",
            )
        digest = payload_hash(payload)
        now = utcnow()
        expires = now + dt.timedelta(minutes=policy.expires_minutes)
        t = schema.approval_requests
        for _ in range(5):
            request_id = secrets.token_hex(4)
            try:
                with self.runtime.store.begin() as conn:
                    conn.execute(
                        insert(t).values(
                            id=request_id,
                            kind=kind,
                            environment=env,
                            title=title,
                            requester=ctx.user.user_id,
                            payload=payload,
                            payload_hash=digest,
                            summary_blocks=summary_blocks,
                            approvals_required=policy.approvals_required,
                            state="pending",
                            channel=channel,
                            message_ref=f"approval:{request_id}",
                            created_at=now,
                            expires_at=expires,
                        )
                    )
                break
            except IntegrityError:
                continue
        else:  # pragma: no cover - 5 collisions in 2^32 ids
            raise RuntimeError("could not allocate an approval request id")
        request = self.get(request_id)
        self.runtime.messenger.post(
            channel, self.render(request), ref=request.message_ref, dedupe_key=f"approval-post:{request_id}"
        )
        if files:
            self.runtime.messenger.upload(
                channel, files, thread_ref=request.message_ref,
                comment=f"Everything request {request_id} would change (payload hash {request.short_hash}).",
            )
        self._audit(request, ctx.user.user_id, "request", "ok", f"hash {request.short_hash}")
        return request

    # -- deciding --------------------------------------------------------------------------------

    def approve(self, ctx: Context, request_id: str) -> Reply:
        request = self._decidable(ctx, request_id)
        who = ctx.user
        if who.user_id == request.requester:
            self._audit(request, who.user_id, "approve", "denied", "requester tried to approve own request")
            raise AccessDenied(
                "You asked for this change, so you cannot approve it: four eyes means someone else.",
                hint=self._who_can_approve(request),
            )
        if not self.runtime.policy.is_approver(who, request.environment):
            self._audit(request, who.user_id, "approve", "denied", "not an approver")
            raise AccessDenied(
                f"Only approvers of `{request.environment}` can approve this request.",
                hint=self._who_can_approve(request),
            )
        v = schema.approval_votes
        try:
            with self.runtime.store.begin() as conn:
                conn.execute(
                    insert(v).values(
                        request_id=request.id,
                        user_id=who.user_id,
                        vote="approve",
                        payload_hash=request.payload_hash,
                        at=utcnow(),
                    )
                )
        except IntegrityError:
            current = self.get(request.id)
            return Reply(
                text=f"You already approved request {request.id} ({len(current.approvers)} of "
                f"{current.approvals_required}).",
                data=current.to_data(),
            )
        request = self.get(request.id)
        self._audit(request, who.user_id, "approve", "ok", f"hash {request.short_hash}")
        if len(request.approvers) < request.approvals_required:
            self._refresh(request)
            missing = request.approvals_required - len(request.approvers)
            return Reply(
                text=f"Approved request {request.id}: {len(request.approvers)} of {request.approvals_required}; "
                f"waiting for {missing} more approver(s).",
                data=request.to_data(),
            )
        return self._start(ctx, request)

    def reject(self, ctx: Context, request_id: str, reason: str) -> Reply:
        reason = reason.strip()
        if not reason:
            raise UserError("Say why you reject the request, so the requester can fix it.")
        request = self._decidable(ctx, request_id)
        who = ctx.user
        if who.user_id != request.requester and not self.runtime.policy.is_approver(who, request.environment):
            self._audit(request, who.user_id, "reject", "denied", "not an approver")
            raise AccessDenied(
                f"Only approvers of `{request.environment}` (or the requester, to withdraw it) can reject this.",
                hint=self._who_can_approve(request),
            )
        t = schema.approval_requests
        with self.runtime.store.begin() as conn:
            changed = conn.execute(
                update(t)
                .where(t.c.id == request.id, t.c.state == "pending")
                .values(state="rejected", decided_at=utcnow(), decided_by=who.user_id, reason=reason[:2000])
            ).rowcount
        if not changed:
            current = self.get(request.id)
            raise Conflict(f"Request {request.id} is already {current.state}; nothing to reject.")
        request = self.get(request.id)
        self._audit(request, who.user_id, "reject", "ok", reason)
        self._refresh(request)
        return Reply(text=f"Rejected request {request.id}: {reason}", data=request.to_data())

    def reject_modal(self, request_id: str, env: str) -> dict[str, Any]:
        """The form Slack opens when Reject is pressed: the reason is required."""
        return {
            "type": "modal",
            "callback_id": REJECT_MODAL,
            "private_metadata": json.dumps({"id": request_id, "env": env}),
            "title": {"type": "plain_text", "text": "Reject request"},
            "submit": {"type": "plain_text", "text": "Reject"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": REASON_FIELD,
                    "label": {"type": "plain_text", "text": "Why? The requester sees this."},
                    "element": {
                        "type": "plain_text_input",
                        "action_id": REASON_FIELD,
                        "multiline": True,
                        "max_length": 1000,
                    },
                }
            ],
        }

    def check_payload(self, request: ApprovalRequest, current_payload: Any) -> None:
        """Refuse to run when what would be applied now is not what was approved."""
        now = payload_hash(current_payload)
        if now != request.payload_hash:
            raise StaleApproval(
                f"What would be applied changed since approval (approved hash `{request.short_hash}`, "
                f"now `{now[:12]}`); nothing was changed.",
                hint="Request it again so approvers see the new values.",
            )

    # -- expiry ----------------------------------------------------------------------------------

    @classmethod
    def expire_due(cls, runtime: Runtime) -> int:
        """Mark pending requests past their expiry as expired and update their messages."""
        t = schema.approval_requests
        with runtime.store.begin() as conn:
            due = conn.execute(
                select(t.c.id).where(t.c.state == "pending", t.c.expires_at <= utcnow())
            ).scalars().all()
        approvals = cls(runtime)
        count = 0
        for request_id in due:
            if approvals._expire(request_id):
                count += 1
        approvals._interrupted()
        return count

    def _interrupted(self) -> None:
        """Requests left ``executing`` by a bot that died mid-run: say so instead of "running" forever.

        Nothing is re-run (a half-applied change needs a person); the age limit is far above any
        helm timeout we allow, so a slow run in another replica is not mistaken for a dead one.
        """
        t = schema.approval_requests
        cutoff = utcnow() - INTERRUPTED_AFTER
        with self.runtime.store.begin() as conn:
            stuck = conn.execute(
                select(t.c.id).where(t.c.state == "executing", t.c.decided_at < cutoff)
            ).scalars().all()
        for request_id in stuck:
            with _RUNNING_LOCK:
                if request_id in _RUNNING:
                    continue
            with self.runtime.store.begin() as conn:
                changed = conn.execute(
                    update(t)
                    .where(t.c.id == request_id, t.c.state == "executing")
                    .values(state="failed", result="Interrupted: the bot stopped while running it. Check the "
                            "environment before asking again.")
                ).rowcount
            if changed:
                request = self.get(request_id)
                self._audit(request, "scheduler", "interrupted", "failed", request.result)
                self._refresh(request)

    def _expire(self, request_id: str) -> bool:
        t = schema.approval_requests
        with self.runtime.store.begin() as conn:
            changed = conn.execute(
                update(t)
                .where(t.c.id == request_id, t.c.state == "pending", t.c.expires_at <= utcnow())
                .values(state="expired", decided_at=utcnow())
            ).rowcount
        if not changed:
            return False
        request = self.get(request_id)
        self._audit(request, "scheduler", "expire", "ok", None)
        self._refresh(request)
        return True

    # -- execution -------------------------------------------------------------------------------

    def _start(self, ctx: Context, request: ApprovalRequest) -> Reply:
        # The claim makes replays after a restart harmless; the conditional update makes a reject or
        # expiry that raced this click win cleanly. Either failing means someone else has it.
        if not self.runtime.store.claim(f"approval-exec:{request.id}", ctx.user.user_id):
            return Reply(text=f"Request {request.id} is already being carried out.", data=request.to_data())
        t = schema.approval_requests
        with self.runtime.store.begin() as conn:
            changed = conn.execute(
                update(t)
                .where(t.c.id == request.id, t.c.state == "pending")
                .values(state="executing", decided_at=utcnow(), decided_by=ctx.user.user_id)
            ).rowcount
        if not changed:
            current = self.get(request.id)
            raise Conflict(f"Request {request.id} is {current.state}; it will not run.")
        request = self.get(request.id)
        self._refresh(request)
        thread = threading.Thread(
            target=self._execute, args=(ctx.user, request), name=f"approval-{request.id}", daemon=False
        )
        with _RUNNING_LOCK:
            _RUNNING[request.id] = thread
        thread.start()
        approvers = ", ".join(f"<@{u}>" for u in request.approvers)
        return Reply(
            text=f"Approved by {approvers}: running request {request.id} now; progress in the request's thread.",
            data=request.to_data(),
        )

    def run_now(self, ctx: Context, request: ApprovalRequest) -> Reply:
        """Run an executor without approval (environments that need none), in the caller's thread."""
        return self.runtime.registry.executors[request.kind](ctx, request)

    def _execute(self, approver: Identity, request: ApprovalRequest) -> None:
        from bot.context import Context

        started = time.perf_counter()
        environment = self.runtime.config.environments.get(request.environment)
        thread_poster = ThreadProgress(self.runtime, request)
        ctx = Context(self.runtime, approver, environment, request.channel, thread_poster, None)
        state, outcome, ref = "done", "ok", None
        try:
            executor = self.runtime.registry.executors.get(request.kind)
            if executor is None:
                raise RuntimeError(f"no executor for approval kind {request.kind!r}")
            reply = executor(ctx, request)
            result = reply.text
            final = Message(reply.text, reply.blocks)
        except StaleApproval as exc:
            state, outcome, result = "stale", "rejected", exc.user_text()
            final = Message(result, [bk.section(f":warning: {bk.escape(result)}")])
        except Exception as exc:
            text, ref = describe_failure(exc, context=f"approval {request.id} ({request.kind})")
            state, outcome, result = "failed", "failed", text
            final = Message(text, [bk.section(f":x: {text}")])
        try:
            # The result is said in the thread before the state turns final, so whoever sees the final
            # state (a poller, the status of the request) also finds the explanation.
            self.runtime.messenger.post(
                request.channel or "", final, thread_ref=request.message_ref,
                dedupe_key=f"approval-result:{request.id}",
            )
        except Exception:
            log.exception("could not post the result of approval %s", request.id)
        try:
            # Audited before the state turns final too: whoever sees "done" finds the record of it.
            self._audit(request, approver.user_id, "execute", outcome, result, ref, started)
            t = schema.approval_requests
            with self.runtime.store.begin() as conn:
                conn.execute(update(t).where(t.c.id == request.id).values(state=state, result=result[:4000]))
            self._refresh(self.get(request.id))
        finally:
            with _RUNNING_LOCK:
                _RUNNING.pop(request.id, None)

    @staticmethod
    def wait(request_id: str, timeout: float | None = None) -> bool:
        """Wait for a background execution started by this process; True when none is running."""
        with _RUNNING_LOCK:
            thread = _RUNNING.get(request_id)
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- shared ----------------------------------------------------------------------------------

    def _decidable(self, ctx: Context, request_id: str) -> ApprovalRequest:
        request = self.get(request_id)
        if request.expired:
            self._expire(request.id)
            raise Conflict(
                f"Request {request.id} expired at {request.expires_at:%Y-%m-%d %H:%M} UTC.",
                hint="Ask the requester to run the command again.",
            )
        if request.state != "pending":
            by = f" by <@{request.decided_by}>" if request.decided_by and request.state != "expired" else ""
            raise Conflict(f"Request {request.id} is already {request.state}{by}.")
        return request

    def _who_can_approve(self, request: ApprovalRequest) -> str:
        env = self.runtime.config.environments.get(request.environment)
        approvers = env.approval.approvers if env else []
        people = [f"<@{a}>" if a.startswith("U") or a.startswith("W") else f"<!subteam^{a}>" for a in approvers]
        others = [p for p in people if p != f"<@{request.requester}>"]
        return f"Approvers: {', '.join(others)}." if others else "No approvers are configured for this environment."

    def _refresh(self, request: ApprovalRequest) -> None:
        if request.message_ref:
            try:
                self.runtime.messenger.update(request.message_ref, self.render(request))
            except Exception:  # the decision stands even if Slack cannot be told right now
                log.exception("could not update the message of approval %s", request.id)

    def render(self, request: ApprovalRequest) -> Message:
        icon = STATE_ICON.get(request.state, "")
        status = {
            "pending": f"Waiting for approval: {len(request.approvers)} of {request.approvals_required}. "
            f"Expires {_slack_time(request.expires_at)}.",
            "executing": "Approved; running now. Progress in the thread.",
            "done": "Approved and done.",
            "failed": "Approved, but it failed: " + bk.escape(bk.truncate(request.result or "see the thread", 300)),
            "rejected": f"Rejected by <@{request.decided_by}>: {bk.escape(request.reason or '')}",
            "expired": "Expired without enough approvals. Nothing was changed.",
            "stale": "Not run: what would be applied changed after approval. Nothing was changed.",
        }.get(request.state, request.state)
        blocks: list[dict[str, Any]] = [
            bk.header(request.title),
            bk.context(
                f"Request `{request.id}` · {request.kind} in `{bk.escape(request.environment)}` · "
                f"requested by <@{request.requester}>"
            ),
            *request.summary_blocks,
            bk.divider(),
            bk.section(f"Approval is bound to payload hash `{request.short_hash}`: if what would be applied "
                       "changes, this approval no longer counts."),
        ]
        if request.approvers:
            blocks.append(bk.context("Approved by " + ", ".join(f"<@{u}>" for u in request.approvers)))
        blocks.append(bk.section(f"{icon} *{status}*"))
        if request.state == "pending":
            value = {"env": request.environment, "id": request.id}
            blocks.append(
                bk.actions(
                    bk.button(
                        "Approve",
                        f"{APPROVE_ACTION}:{request.id}",
                        value,
                        style="primary",
                        confirm=("Approve?", f"{bk.escape(request.title)} (hash `{request.short_hash}`)"),
                    ),
                    bk.button("Reject", f"{REJECT_ACTION}:{request.id}", value, style="danger"),
                    block_id=f"approval:{request.id}",
                )
            )
            blocks.append(
                bk.context(f"Or by text: `/milvus approve {request.id}` · `/milvus reject {request.id} <reason>`")
            )
        text = f"{icon} {request.title} (request {request.id}): {status}"
        return Message(bk.fit_text(text), blocks)

    def _audit(
        self,
        request: ApprovalRequest,
        user_id: str,
        what: str,
        outcome: str,
        detail: str | None,
        ref: str | None = None,
        started: float | None = None,
    ) -> None:
        try:
            self.runtime.audit.record(
                user_id=user_id,
                action=f"{request.kind} {what}",
                kind="approval",
                environment=request.environment,
                arguments={"request": request.id, "hash": request.payload_hash, "title": request.title},
                outcome=outcome,
                detail=detail,
                reference=ref,
                channel=request.channel,
                duration_ms=(time.perf_counter() - started) * 1000 if started else 0.0,
            )
        except Exception:
            log.exception("could not audit approval %s %s", request.id, what)


class ThreadProgress:
    """Progress of an approved request, posted as replies in the request's thread.

    Identical consecutive lines are dropped so a watcher polling every few seconds does not repeat
    itself; the outbox paces what is left to Slack's per-channel rate.
    """

    def __init__(self, runtime: Runtime, request: ApprovalRequest) -> None:
        self.runtime = runtime
        self.request = request
        self.last: str | None = None
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        if text == self.last:
            return
        self.last = text
        self.lines.append(text)
        self.runtime.messenger.post(
            self.request.channel or "", Message(text, [bk.section(text)]), thread_ref=self.request.message_ref
        )


def expire_approvals(runtime: Runtime) -> None:
    """The expiry sweep, every 30 s: housekeeping, not an audited job (it would add a row a minute).
    Idempotent across replicas: each request leaves "pending" by one conditional update."""
    Approvals.expire_due(runtime)
