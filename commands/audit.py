"""/milvus audit: recent audit entries, for admins."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bot import blocks as bk
from bot.config import Role
from bot.context import Context
from bot.registry import Registry, command
from bot.reply import Reply

# "started": a change whose row was written before it ran and never completed (the process died).
OUTCOME_ICON = {
    "ok": ":white_check_mark:",
    "denied": ":no_entry:",
    "rejected": ":grey_exclamation:",
    "failed": ":x:",
    "started": ":hourglass:",
}


class AuditArgs(BaseModel):
    env: str | None = Field(default=None, description="only this environment")
    user: str | None = Field(default=None, description="only this Slack user id (or <@U…> mention)")
    limit: int = Field(default=20, ge=1, le=200, description="how many entries")


@command(
    "audit",
    summary="Recent audit log entries (who, what, where, outcome)",
    args=AuditArgs,
    role=Role.admin,
    examples=("/milvus audit --env prod --limit 50",),
)
def audit_command(ctx: Context, args: AuditArgs) -> Reply:
    if args.env:
        ctx.runtime.environment(args.env)
    user = args.user.strip("<@>").split("|")[0] if args.user else None
    entries = ctx.runtime.audit.recent(environment=args.env, user_id=user, limit=args.limit)
    if not entries:
        return Reply(text="No audit entries match.", data={"entries": []})
    lines = []
    for e in entries:
        where = f" in `{e.environment}`" if e.environment else ""
        icon = OUTCOME_ICON.get(e.outcome, "")
        lines.append(
            f"{icon} {e.at:%Y-%m-%d %H:%M:%S} <@{e.user_id}> {e.kind} `{bk.escape(e.action)}`{where}: "
            f"{e.outcome} ({e.duration_ms:.0f} ms)"
        )
    blocks = [bk.header(f"Audit log: last {len(entries)}")]
    for start in range(0, len(lines), 15):
        blocks.append(bk.section("\n".join(lines[start : start + 15])))
    return Reply(
        text="\n".join(lines),
        blocks=blocks,
        data={
            "entries": [
                {
                    "at": e.at.isoformat(),
                    "user": e.user_id,
                    "action": e.action,
                    "kind": e.kind,
                    "environment": e.environment,
                    "arguments": e.arguments,
                    "outcome": e.outcome,
                    "reference": e.reference,
                    "duration_ms": e.duration_ms,
                }
                for e in entries
            ]
        },
    )


def register(registry: Registry) -> None:
    registry.add(audit_command)
