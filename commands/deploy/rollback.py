"""Rolling the Milvus release back to an earlier Helm revision, behind approval where required.

The approval is bound to the revision deployed when it was asked for: a deploy in between makes
it stale, so an approver never sends the release somewhere they did not see.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from bot import blocks as bk
from bot.config import Environment
from bot.context import Context
from bot.errors import Conflict, NotFound, UserError
from bot.reply import Reply
from commands.approvals.workflow import ApprovalRequest, Approvals
from commands.deploy import review
from commands.deploy.lock import check_lock, lock_name
from commands.deploy.prepare import helm_settings, release_target, values_diff
from integrations.helm import duration_seconds


def request_rollback(ctx: Context, env: Environment, revision: int | None) -> Reply:
    release, namespace = release_target(env)
    helm = ctx.services.helm(env)
    current = helm.status(release, namespace)
    if current is None:
        raise NotFound(f"`{release}` is not installed in `{namespace}`; nothing to roll back.")
    history = helm.history(release, namespace, limit=50)
    target = revision
    if target is None:
        earlier = [r for r in history if r.revision < current.revision and r.status in ("superseded", "deployed")]
        if not earlier:
            raise UserError(f"`{release}` has no earlier good revision to roll back to.")
        target = earlier[-1].revision
    match = next((r for r in history if r.revision == target), None)
    if match is None:
        raise NotFound(f"`{release}` has no revision {target}.", hint="See `/milvus history " + env.name + "`.")
    if target == current.revision:
        raise UserError(f"Revision {target} is the one deployed now.")
    check_lock(ctx.runtime, env.name)
    payload = {
        "environment": env.name, "release": release, "namespace": namespace,
        "from_revision": current.revision, "to_revision": target,
    }  # fmt: skip
    title = f"Roll back {release} in {env.name} to revision {target}"
    now_values = helm.get_values(release, namespace)
    back_values = helm.get_values(release, namespace, revision=target)
    # Going back changes values as surely as a deploy does: the approver reviews them the same way.
    diff = values_diff(now_values, back_values)
    diff_name = f"values-diff-{env.name}-revision-{current.revision}-to-{target}.txt"
    values_hash = review.values_sha256(back_values)
    summary = [
        *review.security_blocks(diff, diff_name),
        bk.fields(
            [
                f"*Now*\nrevision {current.revision}: {bk.escape(current.chart)}-{bk.escape(current.chart_version)} "
                f"(Milvus {bk.escape(_milvus_of(now_values, current.app_version))})",
                f"*Back to*\nrevision {target}: {bk.escape(match.chart)} "
                f"(Milvus {bk.escape(_milvus_of(back_values, match.app_version))})",
            ]
        ),
        *review.diff_blocks(diff, f"revision {current.revision}", diff_name),
        bk.context(f"Values sha256 of revision {target} `{values_hash}`: the first lines of "
                   f"`{bk.escape(diff_name)}` carry the same hash."),
    ]
    if env.needs_approval:
        request = Approvals(ctx.runtime).request(
            ctx, kind="rollback", env=env.name, title=title, summary_blocks=summary, payload=payload,
            files=[review.diff_attachment(diff, filename=diff_name, title=title, values_hash=values_hash)],
        )
        text = f"Approval requested: {title} (request `{request.id}`)."
        return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {text}"), *summary],
                     data={**payload, "approval": request.to_data()})
    return run_rollback(ctx, env, payload, ctx.user.user_id, ctx.progress)


def _milvus_of(values: dict[str, Any], app_version: str) -> str:
    """The revision's own image tag; the chart's appVersion is only its default, and is said to be."""
    tag = ((values.get("image") or {}).get("all") or {}).get("tag")
    return str(tag).lstrip("v") if tag else f"{app_version} (chart default)"


def execute_rollback(ctx: Context, request: ApprovalRequest) -> Reply:
    """The approval executor."""
    env = ctx.runtime.environment(request.environment)
    current = ctx.services.helm(env).status(request.payload["release"], request.payload["namespace"])
    now = {**request.payload, "from_revision": current.revision if current else None}
    # Bound to the revision it was approved against: a deploy in between makes the approval stale.
    Approvals(ctx.runtime).check_payload(request, now)
    return run_rollback(ctx, env, request.payload, request.requester, ctx.progress)


def run_rollback(
    ctx: Context, env: Environment, payload: dict[str, Any], requester: str, progress: Callable[[str], None]
) -> Reply:
    owner = f"{requester}:{secrets.token_hex(4)}"
    timeout = helm_settings(env).timeout
    ttl = dt.timedelta(seconds=duration_seconds(timeout) + 15 * 60)
    lease = ctx.store.acquire(
        lock_name(env.name), owner, f"rollback to revision {payload['to_revision']} by <@{requester}>", ttl
    )
    if lease is None:
        check_lock(ctx.runtime, env.name)
        raise Conflict(f"Another deploy is in progress in `{env.name}`.")
    try:
        helm = ctx.services.helm(env)
        progress(f":leftwards_arrow_with_hook: helm rollback {payload['release']} {payload['to_revision']}")
        helm.rollback(payload["release"], payload["namespace"], revision=int(payload["to_revision"]), timeout=timeout)
        after = helm.status(payload["release"], payload["namespace"])
    finally:
        ctx.store.release(lock_name(env.name), owner)
    text = (
        f"Rolled back {payload['release']} in {env.name} to revision {payload['to_revision']}"
        + (f" (now revision {after.revision}, Milvus {after.app_version})." if after else ".")
    )
    progress(f":white_check_mark: {bk.escape(text)}")
    return Reply(text=text, blocks=[bk.section(f":white_check_mark: {bk.escape(text)}")],
                 data={**payload, "revision": after.revision if after else None}, response_type="in_channel")
