"""/milvus checklist, and the checklist's part in a deploy (summary in the approval request, and the
``require_checklist`` gate that only an admin's override passes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context
from bot.errors import UserError
from bot.registry import command
from bot.reply import Reply
from commands.readiness.checklist import FAIL, checklist_blocks, checklist_data, run_checklist, summary_line


class ChecklistArgs(BaseModel):
    env: str | None = positional(None, description="environment")


@command(
    "checklist",
    summary="Production readiness: the deployment guide's twelve items, checked live, with evidence and fixes",
    args=ChecklistArgs,
    role=Role.viewer,
    targets_env=True,
    examples=("/milvus checklist prod",),
)
def checklist(ctx: Context, args: ChecklistArgs) -> Reply:
    env = ctx.require_env()
    items = run_checklist(ctx, env)
    text = f"Readiness of {env.name}: {summary_line(items)}."
    return Reply(text=text, blocks=checklist_blocks(env, items), data=checklist_data(env, items))


def deploy_gate(ctx: Context, env: Environment, *, override: bool) -> list[dict[str, Any]]:
    """Blocks for a production deploy's approval request; refuses when ``require_checklist`` is set
    and an item fails, unless an admin overrides (the override is written to the audit log)."""
    # The summary is shown only in a production approval request; the gate only with require_checklist.
    if not (env.require_checklist or env.production):
        return []
    items = run_checklist(ctx, env)
    failing = [i for i in items if i.status == FAIL]
    if env.require_checklist and failing:
        names = ", ".join(i.id for i in failing)
        if not override:
            raise UserError(
                f"`{env.name}` requires a passing readiness checklist; failing: {names}. Nothing was changed.",
                hint=f"Fix them (`/milvus checklist {env.name}`), or an admin adds `--override-checklist`.",
            )
        ctx.runtime.policy.require(ctx.user, Role.admin, env.name, "deploy --override-checklist")
        ctx.runtime.audit.record(user_id=ctx.user.user_id, action="checklist override", kind="command",
                                 environment=env.name, arguments={"failing": [i.id for i in failing]},
                                 outcome="ok", detail=f"deploy despite failing checklist items: {names}",
                                 channel=ctx.channel)
    lines = [f"*Readiness checklist:* {summary_line(items)}"]
    lines += [f"✗ {bk.escape(i.title)}: {bk.escape(bk.truncate(i.evidence, 200))}" for i in failing[:6]]
    if failing and override:
        lines.append(f"Overridden by <@{ctx.user.user_id}>.")
    return [bk.section("\n".join(lines))]
