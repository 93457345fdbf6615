"""/milvus approve | reject, and the Approve / Reject buttons and the reason form of every request.

The workflow itself (who may approve, hashes, expiry, running once) is in workflow.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bot.args import positional
from bot.config import Role
from bot.context import Context
from bot.errors import Conflict, UsageError
from bot.registry import action, command
from bot.reply import Reply
from commands.approvals.workflow import APPROVE_ACTION, REASON_FIELD, REJECT_ACTION, REJECT_MODAL, Approvals


class ApproveArgs(BaseModel):
    id: str = positional(description="approval request id (in the request's message)")


class RejectArgs(BaseModel):
    id: str = positional(description="approval request id")
    reason: list[str] = positional(description="why (the requester sees it)")


@command(
    "approve",
    summary="Approve a pending request (deploy, rollback, restore) by its id",
    args=ApproveArgs,
    role=Role.viewer,
    examples=("/milvus approve 3f9a1c2e",),
)
def approve(ctx: Context, args: ApproveArgs) -> Reply:
    return Approvals(ctx.runtime).approve(ctx, args.id)


@command(
    "reject",
    summary="Reject a pending request with a reason",
    args=RejectArgs,
    role=Role.viewer,
    examples=("/milvus reject 3f9a1c2e replica cut too deep for peak hours",),
)
def reject(ctx: Context, args: RejectArgs) -> Reply:
    return Approvals(ctx.runtime).reject(ctx, args.id, " ".join(args.reason))


def _request_id(payload: dict[str, Any]) -> str:
    request_id = payload.get("id")
    if not isinstance(request_id, str):
        raise UsageError("This button does not name a request; use `/milvus approve <id>`.")
    return request_id


@action(APPROVE_ACTION, role=Role.viewer)
def on_approve(ctx: Context, payload: dict[str, Any]) -> Reply:
    return Approvals(ctx.runtime).approve(ctx, _request_id(payload))


@action(REJECT_ACTION, role=Role.viewer)
def on_reject(ctx: Context, payload: dict[str, Any]) -> Reply:
    approvals = Approvals(ctx.runtime)
    request = approvals.get(_request_id(payload))
    if request.state != "pending":
        raise Conflict(f"Request {request.id} is already {request.state}.")
    if not ctx.trigger_id:
        return Reply(text=f"Say why: `/milvus reject {request.id} <reason>`.")
    # No text: Slack shows the form, and an extra "rejecting…" reply would only be noise.
    return Reply(text="", modal=approvals.reject_modal(request.id, request.environment))


@action(REJECT_MODAL, role=Role.viewer, kind="modal")
def on_reject_reason(ctx: Context, payload: dict[str, Any]) -> Reply:
    reason = payload.get(REASON_FIELD)
    return Approvals(ctx.runtime).reject(ctx, _request_id(payload), str(reason or ""))
