"""/milvus deploy | rollback | history.

A deploy renders the Helm values (environment profile < plan < ``--set``), picks the chart version
for the Milvus version, and shows the diff against what is deployed, the chart and image before and
after, and the risks. Environments that need approval get a four-eyes request (bot/approvals.py);
the others deploy at once. Execution: namespace preparation through the Kubernetes API, ``helm
upgrade --install --atomic --wait``, pods watched while helm waits, then validation (pods Ready,
``get_server_version``, Prometheus ``up``); a failed validation rolls back to the previous revision.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context, Runtime
from bot.errors import Conflict, IntegrationError, NotFound, UsageError, UserError
from bot.redact import SECRET_KEY, redact
from bot.registry import command
from bot.reply import Reply
from bot.services import Services
from bot.state import utcnow
from commands.approvals.workflow import ApprovalRequest, Approvals
from commands.plan.values import chart_version_for, deep_merge, parse_set, values_for
from commands.readiness.gate import deploy_gate
from integrations.helm import HelmFailed, ReleaseStatus, duration_seconds, valid_chart, valid_namespace
from integrations.helm import valid_release as _valid_release
from integrations.kubernetes import KubeCluster, Readiness, milvus_selector, readiness

MILVUS_VERSION = re.compile(r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)$")
SET_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$")
PLAN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Milvus documents 2.6 upgrades from 2.5.16 or later only (the streaming node / WAL migration).
MIN_25_FOR_26 = (2, 5, 16)
WATCH_INTERVAL_S = 3.0
READY_GRACE_S = 30.0
MAX_DIFF_LINES = 40


# -- arguments -----------------------------------------------------------------------------------


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


# -- clients -------------------------------------------------------------------------------------


def _helm_cfg(env: Environment) -> Any:
    if env.helm is None:
        raise UserError(
            f"`{env.name}` is not deployed with Helm by this bot.",
            hint=f"Add a `helm:` section to `environments.{env.name}` in the config.",
        )
    return env.helm


# -- rendering what would be applied -------------------------------------------------------------


@dataclass
class Prepared:
    """What a deploy would apply; ``payload`` is what an approval is bound to."""

    env: str
    release: str
    namespace: str
    chart: str
    chart_version: str
    milvus_version: str
    image_tag: str
    values: dict[str, Any]
    inputs: dict[str, Any]

    @property
    def payload(self) -> dict[str, Any]:
        return {
            "environment": self.env,
            "release": self.release,
            "namespace": self.namespace,
            "chart": self.chart,
            "chart_version": self.chart_version,
            "milvus_version": self.milvus_version,
            "image_tag": self.image_tag,
            "values": self.values,
            "inputs": self.inputs,
        }


def _version_tuple(version: str) -> tuple[int, int, int] | None:
    match = MILVUS_VERSION.match(version.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _check_set_keys(values: Any, path: str = "") -> None:
    if isinstance(values, dict):
        for key, child in values.items():
            if not SET_KEY.match(str(key)):
                raise UsageError(
                    f"`--set` key `{bk.escape(path + str(key))}` is not a Helm values key.",
                    hint="Keys are letters, digits, '_', '-' and '.', e.g. `--set queryNode.replicas=3`.",
                )
            _check_set_keys(child, f"{path}{key}.")


def prepare(runtime: Runtime, env: Environment, inputs: dict[str, Any]) -> Prepared:
    """Render the values from the inputs (pure apart from reading a stored plan)."""
    helm = _helm_cfg(env)
    release = _valid_release(helm.release)
    namespace = valid_namespace(Services.kube_target(env).namespace)
    chart = valid_chart(helm.chart)
    version = (inputs.get("version") or helm.milvus_version).strip()
    parsed = _version_tuple(version)
    if parsed is None:
        raise UsageError(f"`{bk.escape(version[:40])}` is not a Milvus version.", hint="Write it as e.g. `2.5.16`.")
    version = ".".join(map(str, parsed))
    image_tag = f"v{version}"
    chart_version = chart_version_for(version)
    overrides = parse_set(inputs.get("set") or [])
    _check_set_keys(overrides)
    plan_id = inputs.get("plan")
    if plan_id:
        values = _values_from_plan(runtime, str(plan_id), version, image_tag, overrides, helm.values)
    else:
        values = deep_merge(helm.values, {"image": {"all": {"tag": image_tag}}})
        values = deep_merge(values, overrides)
    # JSON round trip: the hash and the stored payload must see exactly the same types.
    values = json.loads(json.dumps(values, default=str))
    return Prepared(env.name, release, namespace, chart, chart_version, version, image_tag, values, inputs)


def _values_from_plan(
    runtime: Runtime, plan_id: str, version: str, image_tag: str, overrides: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    from commands.plan.sizing import parse_plan_input
    from commands.plan.sizing import plan as make_plan

    if not PLAN_ID.match(plan_id):
        raise UsageError(f"`{bk.escape(plan_id[:40])}` is not a plan id.")
    stored = runtime.store.kv_get("plans", plan_id)
    if stored is None:
        raise NotFound(f"There is no stored plan `{plan_id}`.", hint="Run `/milvus plan ...`; its reply has the id.")
    plan_input = parse_plan_input(stored)
    line = ".".join(version.split(".")[:2])
    if plan_input.milvus_version != line:
        raise UsageError(
            f"Plan `{plan_id}` is for Milvus {plan_input.milvus_version}, not {version}.",
            hint=f"Deploy a {plan_input.milvus_version}.x version, or plan again for {line}.",
        )
    return values_for(make_plan(plan_input), image_tag, overrides, base=base)


# -- diff and risks ------------------------------------------------------------------------------


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict) and values:
        out: dict[str, Any] = {}
        for key, child in values.items():
            out.update(flatten(child, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): values} if prefix else {}


def values_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    old, new = flatten(before), flatten(after)
    return {
        "added": {k: new[k] for k in sorted(new.keys() - old.keys())},
        "changed": {k: [old[k], new[k]] for k in sorted(new.keys() & old.keys()) if old[k] != new[k]},
        "removed": {k: old[k] for k in sorted(old.keys() - new.keys())},
    }


def _shown(key: str, value: Any) -> str:
    if SECRET_KEY.search(key.rsplit(".", 1)[-1]) and value not in (None, ""):
        return "***"
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_lines(diff: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"+ {k}: {_shown(k, v)}" for k, v in diff["added"].items()]
    lines += [f"~ {k}: {_shown(k, a)} → {_shown(k, b)}" for k, (a, b) in diff["changed"].items()]
    lines += [f"- {k}: {_shown(k, v)}" for k, v in diff["removed"].items()]
    return lines


def _replica_keys(flat: dict[str, Any]) -> dict[str, int]:
    return {
        k: int(v)
        for k, v in flat.items()
        if k.rsplit(".", 1)[-1] in ("replicas", "replicaCount") and isinstance(v, int) and not isinstance(v, bool)
    }


def assess(current: ReleaseStatus | None, current_values: dict[str, Any], prepared: Prepared) -> tuple[
    list[str], list[str]
]:
    """(risks to show, blockers that refuse the deploy)."""
    risks: list[str] = []
    blockers: list[str] = []
    target = _version_tuple(prepared.milvus_version)
    if current is None:
        risks.append(f"First install of `{prepared.release}` in namespace `{prepared.namespace}`.")
    else:
        before = _version_tuple(current.app_version) or _version_tuple(
            str(((current_values.get("image") or {}).get("all") or {}).get("tag") or "")
        )
        if before and target:
            if target[0] != before[0]:
                blockers.append(
                    f"Major version change {_v(before)} → {_v(target)}: not supported by a Helm upgrade."
                )
            elif target[1] - before[1] > 1:
                step = f"{before[0]}.{before[1] + 1}"
                blockers.append(
                    f"Milvus {_v(before)} → {_v(target)} skips {step}: upgrade one minor version at a time "
                    f"(deploy the latest {step}.x first, then {target[0]}.{target[1]})."
                )
            elif target < before:
                risks.append(f"Downgrade {_v(before)} → {_v(target)}: Milvus does not promise downgrades; "
                             "restore from a backup if metadata was migrated.")
            elif target[1] == before[1] + 1:
                risks.append(f"Minor version upgrade {_v(before)} → {_v(target)}: read the release notes.")
                if (before[0], before[1]) == (2, 5) and before < MIN_25_FOR_26:
                    blockers.append(
                        f"Milvus 2.6 upgrades need 2.5.16 or later; this runs {_v(before)}. "
                        "Deploy 2.5.16 first (two-step path), then 2.6."
                    )
                if (before[0], before[1]) == (2, 5) and target[1] == 6:
                    risks.append("2.5 → 2.6 changes the chart line (4.2.x → 5.0.x): streaming nodes appear, "
                                 "index nodes go away; check the message queue settings in the diff.")
            elif target != before:
                risks.append(f"Patch upgrade {_v(before)} → {_v(target)}.")
        if current.status not in ("deployed", "superseded"):
            risks.append(f"The release is `{current.status}` now, not `deployed`.")
    was_cluster = (current_values.get("cluster") or {}).get("enabled", True) if current else None
    now_cluster = (prepared.values.get("cluster") or {}).get("enabled", True)
    if was_cluster is not None and was_cluster != now_cluster:
        change = "cluster → standalone" if was_cluster else "standalone → cluster"
        risks.append(f"Mode change {change}: Milvus pods are replaced by a different layout; "
                     "back up first and expect downtime.")
    old_replicas = _replica_keys(flatten(current_values))
    new_replicas = _replica_keys(flatten(prepared.values))
    for key, old in sorted(old_replicas.items()):
        new = new_replicas.get(key)
        if new is not None and new < old:
            what = "stops the component" if new == 0 else "less capacity; loaded data must still fit"
            risks.append(f"Replica cut `{key}` {old} → {new}: {what}.")
    return risks, blockers


def _v(t: tuple[int, int, int]) -> str:
    return ".".join(map(str, t))


def _image(status: ReleaseStatus | None, values: dict[str, Any]) -> str:
    tag = ((values.get("image") or {}).get("all") or {}).get("tag")
    repo = ((values.get("image") or {}).get("all") or {}).get("repository") or "milvusdb/milvus"
    if tag:
        return f"{repo}:{tag}"
    if status and status.app_version:
        return f"{repo}:v{status.app_version.lstrip('v')} (chart default)"
    return "-"


@dataclass
class Preview:
    prepared: Prepared
    current: ReleaseStatus | None
    current_values: dict[str, Any]
    diff: dict[str, dict[str, Any]]
    risks: list[str]
    blockers: list[str]
    kube: dict[str, str] = field(default_factory=dict)

    @property
    def image_after(self) -> str:
        return _image(None, self.prepared.values)

    @property
    def image_before(self) -> str:
        return _image(self.current, self.current_values) if self.current else "-"

    def blocks(self) -> list[dict[str, Any]]:
        p, cur = self.prepared, self.current
        chart_before = f"{cur.chart}-{cur.chart_version}" if cur else "not installed"
        chart_after = f"{p.chart.rsplit('/', 1)[-1]}-{p.chart_version}"
        lines = diff_lines(self.diff)
        shown = lines[:MAX_DIFF_LINES]
        more = f"\n… and {len(lines) - len(shown)} more" if len(lines) > len(shown) else ""
        body = bk.escape("\n".join(shown)).replace("```", "'''")
        diff_text = f"```{body}{more}```" if shown else "_No value changes._"
        blocks = [
            bk.fields(
                [
                    f"*Release*\n`{p.release}` in `{p.namespace}`" + (f" (revision {cur.revision})" if cur else ""),
                    f"*Milvus*\n{bk.escape(cur.app_version or '?') if cur else '-'} → {p.milvus_version}",
                    f"*Chart*\n{bk.escape(chart_before)} → {bk.escape(chart_after)}",
                    f"*Image*\n{bk.escape(self.image_before)} → {bk.escape(self.image_after)}",
                ]
            ),
            bk.section(f"*Values diff* against `helm get values` ({len(lines)} change(s)):\n{diff_text}"),
        ]
        if self.risks:
            blocks.append(bk.section("*Risks*\n" + "\n".join(f":warning: {bk.escape(r)}" for r in self.risks)))
        if self.blockers:
            blocks.append(bk.section("*Refused*\n" + "\n".join(f":no_entry: {bk.escape(b)}" for b in self.blockers)))
        if p.inputs.get("set"):
            shown = redact(list(p.inputs["set"][:10]))  # --set minio.secretKey=... must not reach Slack
            blocks.append(bk.context("Overrides: " + ", ".join(bk.code(s) for s in shown)))
        if p.inputs.get("plan"):
            blocks.append(bk.context(f"Resources from plan {bk.code(p.inputs['plan'])}"))
        return blocks

    def to_data(self) -> dict[str, Any]:
        p, cur = self.prepared, self.current
        return {
            "environment": p.env,
            "release": p.release,
            "namespace": p.namespace,
            "chart": p.chart,
            "chart_version_before": cur.chart_version if cur else None,
            "chart_version": p.chart_version,
            "milvus_version_before": cur.app_version if cur else None,
            "milvus_version": p.milvus_version,
            "image_before": self.image_before,
            "image": self.image_after,
            "revision_before": cur.revision if cur else None,
            "diff": {
                "added": sorted(self.diff["added"]),
                "changed": sorted(self.diff["changed"]),
                "removed": sorted(self.diff["removed"]),
            },
            "risks": self.risks,
            "blockers": self.blockers,
            "kubernetes": self.kube,
        }


def preview(ctx: Context, env: Environment, prepared: Prepared) -> Preview:
    helm = ctx.services.helm(env)
    current = helm.status(prepared.release, prepared.namespace)
    current_values = helm.get_values(prepared.release, prepared.namespace) if current else {}
    risks, blockers = assess(current, current_values, prepared)
    return Preview(prepared, current, current_values, values_diff(current_values, prepared.values), risks, blockers)


# -- the lock ------------------------------------------------------------------------------------


def _lock_name(env: str) -> str:
    return f"deploy:{env}"


def _check_lock(runtime: Runtime, env: str) -> None:
    holder = runtime.store.holder(_lock_name(env))
    if holder:
        raise Conflict(f"Deploy of {holder.description} in progress in `{env}`; try again when it has finished.")


# -- commands ------------------------------------------------------------------------------------


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
        prepared.namespace, prepared.release, Services.kube_target(env).client_namespaces, dry_run=True
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
            values=prepared.values, timeout=_helm_cfg(env).timeout, dry_run=True,
        )
        kube_line = ", ".join(f"{k} {v}" for k, v in view.kube.items())
        blocks = [bk.header(f"Dry run: {title}"), *view.blocks(),
                  bk.context(f"Kubernetes: {bk.escape(kube_line)}. Helm rendered the chart; nothing was changed.")]
        return Reply(text=f"Dry run: {title}. Nothing was changed.", blocks=blocks, data={**data, "dry_run": True})
    _check_lock(ctx.runtime, env.name)
    readiness = deploy_gate(ctx, env, override=args.override_checklist)
    if env.approval.required:
        request = Approvals(ctx.runtime).request(
            ctx, kind="deploy", env=env.name, title=title, summary_blocks=[*readiness, *view.blocks()],
            payload=prepared.payload,
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


def execute_deploy(ctx: Context, request: ApprovalRequest) -> Reply:
    env = ctx.runtime.environment(request.environment)
    prepared = prepare(ctx.runtime, env, dict(request.payload.get("inputs") or {}))
    Approvals(ctx.runtime).check_payload(request, prepared.payload)
    return run_deploy(ctx, env, prepared, requester=request.requester, progress=ctx.progress)


# -- execution -----------------------------------------------------------------------------------


class DeployFailed(IntegrationError):
    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, system="deploy")


class RolloutWatcher:
    """Polls the release's pods and warning events while helm waits, and reports changes."""

    def __init__(self, kube: KubeCluster, namespace: str, release: str, report: Callable[[str], None]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.release = release
        self.report = report
        self.stop_event = threading.Event()
        self.seen_events: set[str] = set()
        self.problems: list[str] = []
        self.last_line = ""
        self.since = utcnow() - dt.timedelta(seconds=5)
        self.thread = threading.Thread(target=self._loop, name=f"rollout-{release}", daemon=True)

    def __enter__(self) -> RolloutWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=WATCH_INTERVAL_S * 3)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll()
            except IntegrationError as exc:
                self.report(f":grey_question: Cannot read pods right now: {bk.escape(exc.message)}")
            self.stop_event.wait(WATCH_INTERVAL_S)

    def poll(self) -> Readiness:
        state = readiness(self.kube.pods(self.namespace, milvus_selector(self.release)))
        line = f":arrows_counterclockwise: {state.line()}"
        if state.problems:
            line += "\n" + "\n".join(f":warning: {bk.escape(p)}" for p in state.problems[:10])
            for problem in state.problems:
                if problem not in self.problems:
                    self.problems.append(problem)
        if line != self.last_line:
            self.last_line = line
            self.report(line)
        for event in self.kube.warning_events(self.namespace, since=self.since, prefix=self.release):
            key = f"{event.object_name}:{event.reason}:{event.message}"
            if key in self.seen_events:
                continue
            self.seen_events.add(key)
            self.problems.append(event.line())
            self.report(f":rotating_light: {bk.escape(event.line())}")
        return state


def run_deploy(
    ctx: Context, env: Environment, prepared: Prepared, *, requester: str, progress: Callable[[str], None]
) -> Reply:
    runtime = ctx.runtime
    helm_cfg = _helm_cfg(env)
    owner = f"{requester}:{secrets.token_hex(4)}"
    ttl = dt.timedelta(seconds=duration_seconds(helm_cfg.timeout) + 15 * 60)
    description = f"Milvus {prepared.milvus_version} by <@{requester}>"
    lease = runtime.store.acquire(_lock_name(env.name), owner, description, ttl)
    if lease is None:
        _check_lock(runtime, env.name)
        raise Conflict(f"Another deploy is in progress in `{env.name}`.")
    try:
        reply = _deploy_locked(ctx, env, prepared, progress)
    except Exception as exc:
        _audit_deploy(ctx, requester, prepared, "failed", getattr(exc, "message", type(exc).__name__))
        raise
    finally:
        runtime.store.release(_lock_name(env.name), owner)
    _audit_deploy(ctx, requester, prepared, "ok", reply.text)
    return reply


def _audit_deploy(ctx: Context, requester: str, p: Prepared, outcome: str, detail: str) -> None:
    """One record per rollout with what was applied, whoever (or whichever click) started it."""
    from commands.approvals.workflow import payload_hash

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
    helm_cfg = _helm_cfg(env)
    p = prepared
    before = helm.status(p.release, p.namespace)
    prep = kube.prepare(p.namespace, p.release, Services.kube_target(env).client_namespaces)
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
                f"*Image*\n{bk.escape(_image(after, p.values))}",
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
    import time

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


# -- rollback and history ------------------------------------------------------------------------


@command(
    "rollback",
    summary="Roll the Milvus release back to a previous Helm revision (approval where required)",
    args=RollbackArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus rollback staging", "/milvus rollback prod 7"),
)
def rollback(ctx: Context, args: RollbackArgs) -> Reply:
    env = ctx.require_env()
    helm_cfg = _helm_cfg(env)
    release, namespace = _valid_release(helm_cfg.release), valid_namespace(Services.kube_target(env).namespace)
    helm = ctx.services.helm(env)
    current = helm.status(release, namespace)
    if current is None:
        raise NotFound(f"`{release}` is not installed in `{namespace}`; nothing to roll back.")
    history = helm.history(release, namespace, limit=50)
    target = args.revision
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
    _check_lock(ctx.runtime, env.name)
    payload = {
        "environment": env.name, "release": release, "namespace": namespace,
        "from_revision": current.revision, "to_revision": target,
    }  # fmt: skip
    title = f"Roll back {release} in {env.name} to revision {target}"
    summary = [
        bk.fields(
            [
                f"*Now*\nrevision {current.revision}: {bk.escape(current.chart)}-{bk.escape(current.chart_version)} "
                f"(Milvus {bk.escape(current.app_version)})",
                f"*Back to*\nrevision {target}: {bk.escape(match.chart)} (Milvus {bk.escape(match.app_version)})",
            ]
        )
    ]
    if env.approval.required:
        request = Approvals(ctx.runtime).request(
            ctx, kind="rollback", env=env.name, title=title, summary_blocks=summary, payload=payload
        )
        text = f"Approval requested: {title} (request `{request.id}`)."
        return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {text}"), *summary],
                     data={**payload, "approval": request.to_data()})
    return _run_rollback(ctx, env, payload, ctx.user.user_id, ctx.progress)


def execute_rollback(ctx: Context, request: ApprovalRequest) -> Reply:
    env = ctx.runtime.environment(request.environment)
    current = ctx.services.helm(env).status(request.payload["release"], request.payload["namespace"])
    now = {**request.payload, "from_revision": current.revision if current else None}
    # Bound to the revision it was approved against: a deploy in between makes the approval stale.
    Approvals(ctx.runtime).check_payload(request, now)
    return _run_rollback(ctx, env, request.payload, request.requester, ctx.progress)


def _run_rollback(
    ctx: Context, env: Environment, payload: dict[str, Any], requester: str, progress: Callable[[str], None]
) -> Reply:
    owner = f"{requester}:{secrets.token_hex(4)}"
    timeout = _helm_cfg(env).timeout
    ttl = dt.timedelta(seconds=duration_seconds(timeout) + 15 * 60)
    lease = ctx.store.acquire(
        _lock_name(env.name), owner, f"rollback to revision {payload['to_revision']} by <@{requester}>", ttl
    )
    if lease is None:
        _check_lock(ctx.runtime, env.name)
        raise Conflict(f"Another deploy is in progress in `{env.name}`.")
    try:
        helm = ctx.services.helm(env)
        progress(f":leftwards_arrow_with_hook: helm rollback {payload['release']} {payload['to_revision']}")
        helm.rollback(payload["release"], payload["namespace"], revision=int(payload["to_revision"]), timeout=timeout)
        after = helm.status(payload["release"], payload["namespace"])
    finally:
        ctx.store.release(_lock_name(env.name), owner)
    text = (
        f"Rolled back {payload['release']} in {env.name} to revision {payload['to_revision']}"
        + (f" (now revision {after.revision}, Milvus {after.app_version})." if after else ".")
    )
    progress(f":white_check_mark: {bk.escape(text)}")
    return Reply(text=text, blocks=[bk.section(f":white_check_mark: {bk.escape(text)}")],
                 data={**payload, "revision": after.revision if after else None}, response_type="in_channel")


@command(
    "history",
    summary="Helm revisions of the Milvus release (chart, Milvus version, status)",
    args=HistoryArgs,
    role=Role.viewer,
    targets_env=True,
    examples=("/milvus history prod",),
)
def history(ctx: Context, args: HistoryArgs) -> Reply:
    env = ctx.require_env()
    helm_cfg = _helm_cfg(env)
    release, namespace = _valid_release(helm_cfg.release), valid_namespace(Services.kube_target(env).namespace)
    revisions = ctx.services.helm(env).history(release, namespace, limit=args.limit)
    if not revisions:
        return Reply(text=f"`{release}` is not installed in `{namespace}`.", data={"revisions": []})
    lines = [
        f"*{r.revision}* {bk.escape(r.updated[:19])} · {bk.escape(r.status)} · {bk.escape(r.chart)} · "
        f"Milvus {bk.escape(r.app_version)} · {bk.escape(r.description[:120])}"
        for r in reversed(revisions)
    ]
    return Reply(
        text=f"{len(revisions)} revision(s) of {release} in {env.name}",
        blocks=[bk.header(f"Helm history of {release} in {env.name}"), bk.section("\n".join(lines))],
        data={"environment": env.name, "release": release, "revisions": [r.to_data() for r in revisions]},
    )


# -- status extension (called by commands/status.py) ----------------------------------------------


def release_summary(ctx: Context, env: Environment) -> list[dict[str, Any]] | None:
    """Blocks with the release's revision, chart, image and pod readiness; None without Helm."""
    if env.helm is None:
        return None
    try:
        release, namespace = _valid_release(env.helm.release), valid_namespace(Services.kube_target(env).namespace)
        helm = ctx.services.helm(env)
        current = helm.status(release, namespace)
        if current is None:
            return [bk.context(f"Helm release `{release}` is not installed in `{namespace}`.")]
        values = helm.get_values(release, namespace)
        cells = [
            f"*Release*\n`{release}` revision {current.revision} ({bk.escape(current.status)})",
            f"*Chart*\n{bk.escape(current.chart)}-{bk.escape(current.chart_version)}",
            f"*Image*\n{bk.escape(_image(current, values))}",
        ]
        try:
            state = readiness(ctx.services.kube(env).pods(namespace, milvus_selector(release)))
            icon = ":large_green_circle:" if state.all_ready else ":red_circle:"
            pods = f"{icon} {state.line()}"
            if state.problems:
                pods += "\n" + "\n".join(bk.escape(p) for p in state.problems[:3])
        except IntegrationError as exc:
            pods = f":grey_question: {bk.escape(exc.message)}"
        cells.append(f"*Pods*\n{pods}")
        return [bk.fields(cells)]
    except (IntegrationError, UserError) as exc:
        return [bk.context(f":grey_question: Helm release unavailable: {bk.escape(exc.message)}")]
