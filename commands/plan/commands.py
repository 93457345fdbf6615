"""/milvus plan: the command, the form's submission and the plan's buttons.

The inputs and the form are in inputs.py, the reply in render.py, the formulas in sizing.py and the
Helm values in values.py. A plan is stored under a short id (kv ``plans``) that
``/milvus deploy <env> --plan <id>`` reads.
"""

from __future__ import annotations

from typing import Any

from bot.config import Role
from bot.context import Context
from bot.errors import UsageError
from bot.registry import action, command
from bot.reply import Reply
from commands.plan.inputs import MODAL_CALLBACK, PlanArgs, command_for, given_fields, modal_fields, plan_modal
from commands.plan.render import DEPLOY_ACTION, PREFILL_ACTION, environment, plan_reply


@command(
    "plan",
    summary="Capacity plan: memory, disk, pods, growth, cost, the math, Helm values and a deploy button",
    args=PlanArgs,
    role=Role.viewer,
    examples=(
        "/milvus plan --vectors 100M --dim 768 --index hnsw --m 16 --replicas 2 --growth 5M/month --months 12",
        "/milvus plan {env} --vectors 20M --dim 1536 --index diskann",
        "/milvus plan",
    ),
)
def plan_command(ctx: Context, args: PlanArgs) -> Reply:
    raw = args.model_dump()
    if not given_fields({k: v for k, v in raw.items() if k != "env"}):
        env = environment(ctx, args.env)
        hint = "type `/milvus plan --vectors 100M --dim 768 --index hnsw --m 16` (see `/milvus help plan`)"
        # In Slack the form opens and no message is needed; elsewhere say how to plan by text.
        text = "" if ctx.trigger_id else f"The plan form opens in Slack; here, {hint}."
        return Reply(text=text, modal=plan_modal({}, env.name if env else None))
    return plan_reply(ctx, raw)


@action(MODAL_CALLBACK, role=Role.viewer, kind="modal")
def on_submit(ctx: Context, payload: dict[str, Any]) -> Reply:
    return plan_reply(ctx, modal_fields(payload))


@action(PREFILL_ACTION, role=Role.viewer)
def on_prefill(ctx: Context, payload: dict[str, Any]) -> Reply:
    """Open the form filled with a plan's inputs (from a capacity report's or a plan's button)."""
    env = payload.get("env") if isinstance(payload.get("env"), str) else None
    prefill = {k: v for k, v in payload.items() if not k.startswith("_") and k != "env"}
    modal = plan_modal(prefill, env)
    if ctx.trigger_id:
        return Reply(text="", modal=modal)
    command_text = command_for(prefill, env)
    return Reply(text=f"The plan form opens in Slack; here, type `{command_text}`.", modal=modal)


@action(DEPLOY_ACTION, role=Role.operator)
def on_deploy(ctx: Context, payload: dict[str, Any]) -> Reply:
    """Hand the plan to ``/milvus deploy <env> --plan <id>``: same diff, risks, approval and rollout."""
    plan_id, env = payload.get("plan"), payload.get("env")
    if not isinstance(plan_id, str) or not isinstance(env, str):
        raise UsageError("This button does not name a plan and an environment; run `/milvus plan` again.")
    try:
        from commands.deploy.commands import DeployArgs, deploy
    except ImportError:  # the deploy feature is optional; the plan still stands on its own
        return Reply(text=f"Deploys are not available here yet; plan `{plan_id}` is stored for when they are.")
    return deploy(ctx, DeployArgs(env=env, plan=plan_id))
