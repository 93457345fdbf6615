"""What a deploy would apply: the rendered values, the diff against the release, the risks, the preview.

Values are layered environment profile < plan < ``--set``; the chart version follows the Milvus
version. Nothing here changes the cluster: ``preview`` only reads the release's status and values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from bot import blocks as bk
from bot.config import Environment, HelmTarget
from bot.context import Context, Runtime
from bot.errors import IntegrationError, NotFound, UsageError, UserError
from bot.redact import redact
from bot.reply import Attachment
from bot.services import Services
from commands.deploy import review
from commands.plan.values import chart_version_for, deep_merge, parse_set, values_for
from commands.security.values import security_risks, security_settings, with_security
from integrations.helm import ReleaseStatus, valid_chart, valid_namespace, valid_release
from integrations.kubernetes import milvus_selector, readiness

MILVUS_VERSION = re.compile(r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)$")
SET_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$")
PLAN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Milvus documents 2.6 upgrades from 2.5.16 or later only (the streaming node / WAL migration).
MIN_25_FOR_26 = (2, 5, 16)


def helm_settings(env: Environment) -> HelmTarget:
    if env.helm is None:
        raise UserError(
            f"`{env.name}` is not deployed with Helm by this bot.",
            hint=f"Add a `helm:` section to `environments.{env.name}` in the config.",
        )
    return env.helm


def release_target(env: Environment) -> tuple[str, str]:
    """(release, namespace) of the environment's Milvus, validated before they reach helm's argv."""
    return valid_release(helm_settings(env).release), valid_namespace(Services.kube_target(env).namespace)


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



def version_tuple(version: str) -> tuple[int, int, int] | None:
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
    helm = helm_settings(env)
    release, namespace = release_target(env)
    chart = valid_chart(helm.chart)
    version = (inputs.get("version") or helm.milvus_version).strip()
    parsed = version_tuple(version)
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
    values = with_security(env, values)
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


def _replica_keys(flat: dict[str, Any]) -> dict[str, int]:
    return {
        k: int(v)
        for k, v in flat.items()
        if k.rsplit(".", 1)[-1] in ("replicas", "replicaCount") and isinstance(v, int) and not isinstance(v, bool)
    }


@dataclass(frozen=True)
class RunningVersion:
    """The Milvus version that runs now, and where that was read."""

    version: tuple[int, int, int] | None
    source: str

    @property
    def text(self) -> str:
        return dotted(self.version) if self.version else "unknown"

    @property
    def measured(self) -> bool:
        """False when only the chart's default says so: the chart's appVersion is not what runs."""
        return self.version is not None and not self.source.startswith("chart")


def _tag_version(tag: str) -> tuple[int, int, int] | None:
    """``v2.5.10`` or ``v2.5.10-gpu`` -> (2, 5, 10); tags that are not versions give None."""
    return version_tuple(tag.split("-", 1)[0]) if tag else None


def _image_version(image: str) -> tuple[int, int, int] | None:
    """``milvusdb/milvus:v2.5.10`` -> (2, 5, 10); digests (``@sha256:...``) give None."""
    name, _, tag = image.rpartition(":")
    return None if not name or "/" in tag or "@" in name else _tag_version(tag)


def running_version(
    ctx: Context, env: Environment, current: ReleaseStatus | None, current_values: dict[str, Any]
) -> RunningVersion:
    """What is deployed, read from what runs, never from the chart's appVersion first.

    A chart line carries its own default image, so the release's appVersion says nothing about a
    release deployed with an image tag of its own (the bot always sets one). In order: the image tag
    in the release's values, the image of its running pods, the server's own version; only then the
    chart's appVersion, marked as such.
    """
    if current is None:
        return RunningVersion(None, "not installed")
    tag = str(((current_values.get("image") or {}).get("all") or {}).get("tag") or "")
    if _tag_version(tag):
        return RunningVersion(_tag_version(tag), "image tag in the release's values")
    try:
        state = readiness(ctx.services.kube(env).pods(current.namespace, milvus_selector(current.name)))
        found = {v for image in state.images if (v := _image_version(image))}
        if found:
            # Mid-rollout pods disagree: the oldest one is what an upgrade must start from.
            return RunningVersion(min(found), "image of the running pods")
    except (IntegrationError, UserError):
        pass
    try:
        reported = version_tuple(ctx.services.milvus(env).server_version())
        if reported:
            return RunningVersion(reported, "the server's get_server_version")
    except (IntegrationError, UserError):
        pass
    return RunningVersion(version_tuple(current.app_version), "chart appVersion (not confirmed from what runs)")


def assess(
    current: ReleaseStatus | None, current_values: dict[str, Any], prepared: Prepared, running: RunningVersion
) -> tuple[list[str], list[str]]:
    """(risks to show, blockers that refuse the deploy)."""
    risks: list[str] = []
    blockers: list[str] = []
    target = version_tuple(prepared.milvus_version)
    if current is None:
        risks.append(f"First install of `{prepared.release}` in namespace `{prepared.namespace}`.")
    else:
        before = running.version
        if before and not running.measured:
            risks.append(f"The running Milvus version could not be read from the release, its pods or the "
                         f"server; the chart says {dotted(before)}, which is its default, not a measurement.")
        elif before is None:
            risks.append("The running Milvus version could not be read; version upgrade rules were not checked.")
        if before and target:
            if target[0] != before[0]:
                blockers.append(
                    f"Major version change {dotted(before)} → {dotted(target)}: not supported by a Helm upgrade."
                )
            elif target[1] - before[1] > 1:
                step = f"{before[0]}.{before[1] + 1}"
                blockers.append(
                    f"Milvus {dotted(before)} → {dotted(target)} skips {step}: upgrade one minor version at a time "
                    f"(deploy the latest {step}.x first, then {target[0]}.{target[1]})."
                )
            elif target < before:
                risks.append(f"Downgrade {dotted(before)} → {dotted(target)}: Milvus does not promise downgrades; "
                             "restore from a backup if metadata was migrated.")
            elif target[1] == before[1] + 1:
                risks.append(f"Minor version upgrade {dotted(before)} → {dotted(target)}: read the release notes.")
                if (before[0], before[1]) == (2, 5) and before < MIN_25_FOR_26:
                    blockers.append(
                        f"Milvus 2.6 upgrades need 2.5.16 or later; this runs {dotted(before)}. "
                        "Deploy 2.5.16 first (two-step path), then 2.6."
                    )
                if (before[0], before[1]) == (2, 5) and target[1] == 6:
                    risks.append("2.5 → 2.6 changes the chart line (4.2.x → 5.0.x): streaming nodes appear, "
                                 "index nodes go away; check the message queue settings in the diff.")
            elif target != before:
                risks.append(f"Patch upgrade {dotted(before)} → {dotted(target)}.")

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


def dotted(t: tuple[int, int, int]) -> str:
    return ".".join(map(str, t))


def image_of(status: ReleaseStatus | None, values: dict[str, Any]) -> str:
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
    running: RunningVersion = RunningVersion(None, "not read")
    kube: dict[str, str] = field(default_factory=dict)
    # Shown first: an approver must not miss a change that turns Milvus security off.
    security_risks: list[str] = field(default_factory=list)

    @property
    def image_after(self) -> str:
        return image_of(None, self.prepared.values)

    @property
    def image_before(self) -> str:
        return image_of(self.current, self.current_values) if self.current else "-"

    @property
    def values_hash(self) -> str:
        return review.values_sha256(self.prepared.values)

    @property
    def diff_filename(self) -> str:
        return f"values-diff-{self.prepared.env}-{self.values_hash[:12]}.txt"

    def diff_attachment(self, title: str, payload_hash: str | None = None) -> Attachment:
        return review.diff_attachment(
            self.diff, filename=self.diff_filename, title=title, values_hash=self.values_hash,
            payload_hash=payload_hash,
        )

    def blocks(self) -> list[dict[str, Any]]:
        """Security-relevant changes first, then the summary, risks and the (bounded) diff."""
        p, cur = self.prepared, self.current
        chart_before = f"{cur.chart}-{cur.chart_version}" if cur else "not installed"
        chart_after = f"{p.chart.rsplit('/', 1)[-1]}-{p.chart_version}"
        blocks = []
        if self.security_risks:
            blocks.append(bk.section("*Security risks*\n" + "\n".join(
                f":rotating_light: {bk.escape(r)}" for r in self.security_risks)))
        blocks += [
            *review.security_blocks(self.diff, self.diff_filename),
            bk.fields(
                [
                    f"*Release*\n`{p.release}` in `{p.namespace}`" + (f" (revision {cur.revision})" if cur else ""),
                    f"*Milvus*\n{self.running.text if cur else '-'} → {p.milvus_version}"
                    + (f"\n_running version from {bk.escape(self.running.source)}_" if cur else ""),
                    f"*Chart*\n{bk.escape(chart_before)} → {bk.escape(chart_after)}",
                    f"*Image*\n{bk.escape(self.image_before)} → {bk.escape(self.image_after)}",
                ]
            ),
        ]
        blocks.append(bk.section("*Security*\n" + "\n".join(
            f"{':lock:' if s.secure else ':unlock:'} {bk.escape(s.label)}: {bk.escape(s.value)}"
            for s in security_settings(p.values))))
        if self.risks:
            blocks.append(bk.section("*Risks*\n" + "\n".join(f":warning: {bk.escape(r)}" for r in self.risks)))
        if self.blockers:
            blocks.append(bk.section("*Refused*\n" + "\n".join(f":no_entry: {bk.escape(b)}" for b in self.blockers)))
        blocks += review.diff_blocks(self.diff, "`helm get values`", self.diff_filename)
        blocks.append(bk.context(f"Values sha256 `{self.values_hash}`: the first lines of "
                                 f"`{bk.escape(self.diff_filename)}` carry the same hash."))
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
            "milvus_version_before": self.running.text if cur and self.running.version else None,
            "milvus_version_before_source": self.running.source if cur else None,
            "milvus_version": p.milvus_version,
            "image_before": self.image_before,
            "image": self.image_after,
            "revision_before": cur.revision if cur else None,
            "values_sha256": self.values_hash,
            "security_changes": review.security_changes(self.diff),
            "diff": {
                "added": sorted(self.diff["added"]),
                "changed": sorted(self.diff["changed"]),
                "removed": sorted(self.diff["removed"]),
            },
            "risks": [*self.security_risks, *self.risks],
            "blockers": self.blockers,
            "security": [s.to_data() for s in security_settings(p.values)],
            "kubernetes": self.kube,
        }


def preview(ctx: Context, env: Environment, prepared: Prepared) -> Preview:
    helm = ctx.services.helm(env)
    current = helm.status(prepared.release, prepared.namespace)
    current_values = helm.get_values(prepared.release, prepared.namespace) if current else {}
    running = running_version(ctx, env, current, current_values)
    risks, blockers = assess(current, current_values, prepared, running)
    secured = security_risks(current_values, prepared.values, production=env.production)
    return Preview(prepared, current, current_values, values_diff(current_values, prepared.values), risks, blockers,
                   running, security_risks=secured)
