"""/milvus deploy | rollback | history: the argument models and the handlers.

What a deploy would apply and its preview are in prepare.py, running it in execute.py (pods watched
by rollout.py), rollbacks in rollback.py, history and the status summary in history.py. Environments
that need approval get a four-eyes request (commands/approvals/); the others deploy at once.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from bot import blocks as bk
from bot.args import positional
from bot.config import Role
from bot.context import Context
from bot.errors import UserError
from bot.registry import command
from bot.reply import Reply
from bot.services import Services
from commands.approvals.workflow import Approvals, payload_hash
from commands.deploy.execute import run_deploy
from commands.deploy.history import history_reply
from commands.deploy.lock import check_lock
from commands.deploy.prepare import helm_settings, prepare, preview
from commands.deploy.rollback import request_rollback
from commands.readiness.gate import deploy_gate
from commands.security.values import certificate_for


class DeployArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    version: str | None = Field(None, description="Milvus version, e.g. 2.5.16 (default: the environment's)")
    plan: str | None = Field(None, description="plan id from `/milvus plan` to take resources from")
    set: list[str] = Field(default_factory=list, description="Helm value override key=value (repeatable)")
    dry_run: bool = Field(False, description="show the diff and risks, check the render; change nothing")
    override_checklist: bool = Field(False, description="admin only: deploy although readiness checklist items fail")


class RollbackArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    revision: int | None = positional(None, description="revision to go back to (default: the previous one)")


class HistoryArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    limit: int = Field(10, ge=1, le=50, description="how many revisions")


@command(
    "deploy",
    summary="Deploy Milvus with Helm: diff, risks, approval where required, rollout, validation, rollback",
    args=DeployArgs,
    role=Role.operator,
    targets_env=True,
    examples=(
        "/milvus deploy staging --version 2.5.16 --dry-run",
        "/milvus deploy prod --plan p-3f9a --set queryNode.replicas=3",
    ),
)
def deploy(ctx: Context, args: DeployArgs) -> Reply:
    env = ctx.require_env()
    inputs = {"version": args.version, "plan": args.plan, "set": list(args.set)}
    prepared = prepare(ctx.runtime, env, inputs)
    view = preview(ctx, env, prepared)
    view.kube = ctx.services.kube(env).prepare(
        prepared.namespace, prepared.release, Services.kube_target(env).client_namespaces, dry_run=True,
        certificate=certificate_for(env, prepared.release, prepared.namespace),
    )
    title = f"Deploy Milvus {prepared.milvus_version} to {env.name}"
    data = view.to_data()
    if view.blockers:
        raise UserError(
            f"{title} refused: " + " ".join(view.blockers),
            hint="Nothing was changed.",
        )
    if args.dry_run:
        # helm renders the chart with these values against the cluster; nothing is applied.
        ctx.services.helm(env).upgrade_install(
            prepared.release, prepared.chart, namespace=prepared.namespace, chart_version=prepared.chart_version,
            values=prepared.values, timeout=helm_settings(env).timeout, dry_run=True,
        )
        kube_line = ", ".join(f"{k} {v}" for k, v in view.kube.items())
        blocks = [bk.header(f"Dry run: {title}"), *view.blocks(),
                  bk.context(f"Kubernetes: {bk.escape(kube_line)}. Helm rendered the chart; nothing was changed.")]
        return Reply(text=f"Dry run: {title}. Nothing was changed.", blocks=blocks, data={**data, "dry_run": True},
                     files=[view.diff_attachment(f"dry run: {title}")])
    check_lock(ctx.runtime, env.name)
    readiness = deploy_gate(ctx, env, override=args.override_checklist)
    if env.needs_approval:
        digest = payload_hash(prepared.payload)
        diff = view.diff_attachment(title, payload_hash=digest)
        request = Approvals(ctx.runtime).request(
            ctx, kind="deploy", env=env.name, title=title, summary_blocks=[*readiness, *view.blocks()],
            payload=prepared.payload, files=[diff],
        )
        text = (
            f"Approval requested: {title} (request `{request.id}`, hash `{request.short_hash}`); "
            f"{request.approvals_required} approval(s) needed from approvers of `{env.name}`."
        )
        return Reply(
            text=text,
            blocks=[bk.section(f":hourglass_flowing_sand: {text}"), *view.blocks()],
            data={**data, "approval": request.to_data()},
        )
    result = run_deploy(ctx, env, prepared, requester=ctx.user.user_id, progress=ctx.progress)
    return Reply(text=result.text, blocks=result.blocks, data={**data, **(result.data or {})},
                 response_type="in_channel")


@command(
    "rollback",
    summary="Roll the Milvus release back to a previous Helm revision (approval where required)",
    args=RollbackArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus rollback staging", "/milvus rollback prod 7"),
)
def rollback(ctx: Context, args: RollbackArgs) -> Reply:
    return request_rollback(ctx, ctx.require_env(), args.revision)


@command(
    "history",
    summary="Helm revisions of the Milvus release (chart, Milvus version, status)",
    args=HistoryArgs,
    role=Role.viewer,
    targets_env=True,
    examples=("/milvus history prod",),
)
def history(ctx: Context, args: HistoryArgs) -> Reply:
    return history_reply(ctx, ctx.require_env(), args.limit)
