"""Running a deploy: the lock, namespace preparation, ``helm upgrade --install --atomic --wait`` with
the pods watched, then validation (pods Ready, ``get_server_version``, Prometheus ``up``); a failed
validation rolls back to the revision that ran before. One audit record per rollout.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable

from bot import blocks as bk
from bot.config import Environment
from bot.context import Context
from bot.errors import Conflict, IntegrationError, UserError
from bot.reply import Reply
from bot.services import Services
from commands.approvals.workflow import ApprovalRequest, Approvals, payload_hash
from commands.deploy.lock import check_lock, lock_name
from commands.deploy.prepare import Prepared, helm_settings, image_of, prepare
from commands.deploy.rollout import RolloutWatcher
from commands.security.values import certificate_for
from integrations.helm import HelmFailed, duration_seconds
from integrations.kubernetes import KubeCluster, milvus_selector, readiness

READY_GRACE_S = 30.0


class DeployFailed(IntegrationError):
    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, system="deploy")


def execute_deploy(ctx: Context, request: ApprovalRequest) -> Reply:
    """The approval executor: render again from the stored inputs and refuse if anything moved."""
    env = ctx.runtime.environment(request.environment)
    prepared = prepare(ctx.runtime, env, dict(request.payload.get("inputs") or {}))
    Approvals(ctx.runtime).check_payload(request, prepared.payload)
    return run_deploy(ctx, env, prepared, requester=request.requester, progress=ctx.progress)


def run_deploy(
    ctx: Context, env: Environment, prepared: Prepared, *, requester: str, progress: Callable[[str], None]
) -> Reply:
    runtime = ctx.runtime
    helm_cfg = helm_settings(env)
    owner = f"{requester}:{secrets.token_hex(4)}"
    ttl = dt.timedelta(seconds=duration_seconds(helm_cfg.timeout) + 15 * 60)
    description = f"Milvus {prepared.milvus_version} by <@{requester}>"
    lease = runtime.store.acquire(lock_name(env.name), owner, description, ttl)
    if lease is None:
        check_lock(runtime, env.name)
        raise Conflict(f"Another deploy is in progress in `{env.name}`.")
    try:
        reply = _deploy_locked(ctx, env, prepared, progress)
    except Exception as exc:
        _audit_deploy(ctx, requester, prepared, "failed", getattr(exc, "message", type(exc).__name__))
        raise
    finally:
        runtime.store.release(lock_name(env.name), owner)
    _audit_deploy(ctx, requester, prepared, "ok", reply.text)
    return reply


def _audit_deploy(ctx: Context, requester: str, p: Prepared, outcome: str, detail: str) -> None:
    """One record per rollout with what was applied, whoever (or whichever click) started it."""
    ctx.runtime.audit.record(
        user_id=ctx.user.user_id,
        action="deploy rollout",
        kind="deploy",
        environment=p.env,
        arguments={
            "requester": requester, "release": p.release, "namespace": p.namespace, "chart": p.chart,
            "chart_version": p.chart_version, "milvus_version": p.milvus_version, "hash": payload_hash(p.payload),
        },
        outcome=outcome,
        detail=detail,
        channel=ctx.channel,
    )


def _deploy_locked(ctx: Context, env: Environment, prepared: Prepared, progress: Callable[[str], None]) -> Reply:
    helm, kube = ctx.services.helm(env), ctx.services.kube(env)
    helm_cfg = helm_settings(env)
    p = prepared
    before = helm.status(p.release, p.namespace)
    prep = kube.prepare(p.namespace, p.release, Services.kube_target(env).client_namespaces,
                        certificate=certificate_for(env, p.release, p.namespace))
    progress(f":gear: Namespace `{p.namespace}`: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in prep.items()))
    progress(
        f":rocket: helm upgrade --install {p.release} {bk.escape(p.chart)} --version {p.chart_version} "
        f"(Milvus {p.milvus_version}, timeout {helm_cfg.timeout})"
    )
    with RolloutWatcher(kube, p.namespace, p.release, progress) as watcher:
        try:
            after = helm.upgrade_install(
                p.release, p.chart, namespace=p.namespace, chart_version=p.chart_version, values=p.values,
                timeout=helm_cfg.timeout, atomic=True, wait=True,
            )
        except HelmFailed as exc:
            why = _why(watcher.problems, exc.detail or exc.message)
            rolled = (
                f"Helm rolled back to revision {before.revision} by itself (--atomic)"
                if before else "Helm removed the failed first install (--atomic)"
            )
            progress(f":x: Rollout failed: {bk.escape(why)}. {rolled}.")
            raise DeployFailed(f"Deploy of Milvus {p.milvus_version} to {env.name} failed: {why}. {rolled}.") from exc
    progress(f":mag: Revision {after.revision} deployed; validating.")
    failures, checks = validate(ctx, env, p, kube)
    if failures:
        why = "; ".join(failures)
        if before is None:
            progress(f":x: Validation failed: {bk.escape(why)}. First install: nothing to roll back to.")
            raise DeployFailed(f"Milvus {p.milvus_version} in {env.name} failed validation: {why}. "
                               "This was the first install, so there is no revision to roll back to.")
        progress(f":leftwards_arrow_with_hook: Validation failed: {bk.escape(why)}. "
                 f"Rolling back to revision {before.revision}.")
        try:
            helm.rollback(p.release, p.namespace, revision=before.revision, timeout=helm_cfg.timeout)
        except HelmFailed as exc:
            raise DeployFailed(
                f"Milvus {p.milvus_version} in {env.name} failed validation ({why}) and the rollback to revision "
                f"{before.revision} failed too: {exc.detail or exc.message}.",
                hint="Look at `/milvus history` and the pods now.",
            ) from exc
        progress(f":leftwards_arrow_with_hook: Rolled back to revision {before.revision}.")
        raise DeployFailed(
            f"Milvus {p.milvus_version} in {env.name} failed validation: {why}. "
            f"Rolled back to revision {before.revision} ({before.chart}-{before.chart_version})."
        )
    text = (
        f"Deployed Milvus {p.milvus_version} to {env.name}: revision {after.revision}, "
        f"chart {after.chart}-{after.chart_version}. " + " ".join(checks)
    )
    progress(f":white_check_mark: {bk.escape(text)}")
    blocks = [
        bk.section(f":white_check_mark: *Deployed Milvus {p.milvus_version} to `{env.name}`*"),
        bk.fields(
            [
                f"*Revision*\n{before.revision if before else '-'} → {after.revision}",
                f"*Chart*\n{bk.escape(after.chart)}-{bk.escape(after.chart_version)}",
                f"*Image*\n{bk.escape(image_of(after, p.values))}",
                f"*Checks*\n{bk.escape(' '.join(checks))}",
            ]
        ),
    ]
    return Reply(
        text=text,
        blocks=blocks,
        data={"revision": after.revision, "chart_version": after.chart_version, "checks": checks},
    )


def _why(problems: list[str], helm_detail: str) -> str:
    seen = list(dict.fromkeys(problems))[:3]
    return "; ".join([*seen, helm_detail]) if seen else helm_detail


def validate(ctx: Context, env: Environment, p: Prepared, kube: KubeCluster) -> tuple[list[str], list[str]]:
    """(failures, passed checks): pods Ready, Milvus answers, Prometheus ``up``."""
    failures: list[str] = []
    checks: list[str] = []
    deadline = time.monotonic() + READY_GRACE_S
    while True:
        state = readiness(kube.pods(p.namespace, milvus_selector(p.release)))
        if state.all_ready or state.problems or time.monotonic() >= deadline:
            break
        time.sleep(2)
    if state.total == 0:
        failures.append("no Milvus pods found")
    elif not state.all_ready:
        detail = f": {', '.join(state.problems[:3])}" if state.problems else ""
        failures.append(f"{state.line()}{detail}")
    else:
        checks.append(f"{state.ready}/{state.total} pods Ready.")
    try:
        version = ctx.services.milvus(env).server_version()
        # Reported, not enforced: Milvus Lite and some builds report versions that differ in form.
        expected = "" if p.milvus_version in version else f", expected {p.milvus_version}"
        checks.append(f"Milvus answers (version {version}{expected}).")
    except (IntegrationError, UserError) as exc:
        failures.append(f"Milvus does not answer: {exc.message}")
    if env.prometheus_url:
        try:
            failures_up, line = _prometheus_up(ctx, env, p)
            failures.extend(failures_up)
            if line:
                checks.append(line)
        except IntegrationError as exc:
            failures.append(f"Prometheus could not be asked for `up`: {exc.message}")
    return failures, checks


def _prometheus_up(ctx: Context, env: Environment, p: Prepared) -> tuple[list[str], str]:
    namespace = env.prometheus_namespace or p.namespace
    instance = env.prometheus_instance or p.release
    query = f'up{{namespace="{namespace}",app_kubernetes_io_instance="{instance}"}}'
    samples = ctx.services.prometheus(env).query(query)
    if not samples:
        return [f"Prometheus has no `up` series for {instance} in {namespace}"], ""
    down = [s.labels.get("pod") or s.labels.get("instance") or "?" for s in samples if s.value < 1]
    if down:
        return [f"Prometheus sees {len(down)} of {len(samples)} target(s) down: {', '.join(down[:5])}"], ""
    return [], f"Prometheus: {len(samples)} target(s) up."
