"""/milvus checklist: the deployment guide's twelve readiness items, each checked live.

Every item says pass, warn, fail or not_checked, the evidence it looked at and the command that
fixes it. ``not_checked`` always says why (nothing configured to look at, or the audit it relies on
does not exist). A check that breaks is reported as ``fail`` when an outside system would not answer
(that is a readiness problem too) and ``not_checked`` when our own check failed unexpectedly.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bot import blocks as bk
from bot import schema
from bot.config import Environment
from bot.context import Context
from bot.errors import ChatOpsError
from bot.state import as_utc, utcnow
from bot.units import format_duration
from commands.readiness import records

log = logging.getLogger("milvus_chatops.readiness")

PASS, WARN, FAIL, NOT_CHECKED = "pass", "warn", "fail", "not_checked"
RULES_FILE = Path(__file__).resolve().parents[2] / "rules" / "milvus-alerts.yml"
ICONS = {PASS: ":white_check_mark:", WARN: ":warning:", FAIL: ":x:", NOT_CHECKED: ":grey_question:"}


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    status: str
    evidence: str
    fix: str = ""

    def as_data(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "evidence": self.evidence, "fix": self.fix}


Check = Callable[["Probe"], tuple[str, str, str]]  # -> (status, evidence, fix)


class Probe:
    """What the checks share for one environment: the context, and facts read once (the plan)."""

    def __init__(self, ctx: Context, env: Environment) -> None:
        self.ctx = ctx
        self.env = env
        self.now = utcnow()
        self._plan: Any = ...

    @property
    def runtime(self) -> Any:
        return self.ctx.runtime

    @property
    def namespace(self) -> str:
        return self.ctx.services.kube_target(self.env).namespace

    @property
    def release(self) -> str:
        return self.env.helm.release if self.env.helm else "milvus"

    def plan(self) -> tuple[str, Any] | None:
        """(plan id, Plan) of the newest successful deploy of this environment that used ``--plan``."""
        if self._plan is ...:
            self._plan = _deployed_plan(self.runtime, self.env.name)
        return self._plan


# -- the items ---------------------------------------------------------------------------------------


def check_environment(p: Probe) -> tuple[str, str, str]:
    env, services = p.env, p.ctx.services
    facts, problems = ["config validates"], []
    if env.milvus.token_env and not p.ctx.settings.secret(env.milvus.token_env):
        problems.append(f"${env.milvus.token_env} (Milvus credentials) is not set")
    answers: list[tuple[str, Callable[[], str]]] = [("Milvus", lambda: services.milvus(env).server_version())]
    if env.kubernetes:
        answers.append(("Kubernetes", lambda: services.kube(env).version()))
    if env.prometheus_url:
        answers.append(("Prometheus", lambda: _pinged(services.prometheus(env))))
    if env.alertmanager_url:
        answers.append(("Alertmanager", lambda: "ready" if services.alertmanager(env).ready() else _raise("not ready")))
    for name, ask in answers:
        try:
            facts.append(f"{name} answers ({ask()})")
        except ChatOpsError as exc:
            problems.append(f"{name}: {exc.message}")
    if problems:
        return FAIL, "; ".join([*facts, *problems]), "milvus-chatops check-config, then fix the named key or service"
    return PASS, "; ".join(facts), ""


def check_capacity(p: Probe) -> tuple[str, str, str]:
    found = p.plan()
    if found is None:
        return (NOT_CHECKED, "no plan recorded for this environment: no successful deploy used --plan",
                f"/milvus plan ... then /milvus deploy {p.env.name} --plan <id>")
    plan_id, plan = found
    inp = plan.input
    capacity = inp.vectors + inp.growth_per_month * inp.months
    rows = sum(c.rows for c in p.ctx.services.milvus(p.env).inventory())
    share = rows / capacity if capacity else 0.0
    evidence = (f"plan {plan_id}: {capacity:,} vectors ({inp.vectors:,} + growth), loading memory "
                f"{plan.loading_memory_gib:,.1f} GiB; today {rows:,} rows ({share:.0%} of the plan)")
    memory = _query_node_memory_gib(p)
    if memory is not None:
        evidence += f", query nodes use {memory:,.1f} GiB"
    fix = f"/milvus plan with today's figures, then /milvus deploy {p.env.name} --plan <id>"
    if share > 1 or (memory is not None and memory > plan.loading_memory_gib * 1.2):
        return FAIL, evidence + ": beyond the plan", fix
    if share > 0.8:
        return WARN, evidence + ": over 80% of the plan", fix
    return PASS, evidence, ""


def check_kubernetes(p: Probe) -> tuple[str, str, str]:
    if p.env.kubernetes is None:
        return NOT_CHECKED, "no `kubernetes:` section for this environment", _config_fix(p, "kubernetes")
    kube = p.ctx.services.kube(p.env)
    version = kube.version()
    nodes = kube.nodes()
    ready = [n for n in nodes if n.ready]
    cpu, mem = sum(n.cpu for n in ready), sum(n.memory_gib for n in ready)
    evidence = f"API {version}; {len(ready)}/{len(nodes)} nodes ready ({cpu:,.1f} CPU, {mem:,.1f} GiB allocatable)"
    if not ready:
        return FAIL, evidence, "add or repair nodes"
    found = p.plan()
    if found is None:
        return WARN, evidence + "; no plan to size against", f"/milvus deploy {p.env.name} --plan <id>"
    plan_id, plan = found
    pods = [r for r in (*plan.components, *plan.dependencies) if r.replicas]
    need_cpu = sum(r.replicas * r.cpu for r in pods)
    need_mem = sum(r.replicas * r.memory_gib for r in pods)
    biggest = max(pods, key=lambda r: r.memory_gib, default=None)
    evidence += f"; plan {plan_id} needs {need_cpu:,.1f} CPU, {need_mem:,.1f} GiB"
    if need_cpu > cpu or need_mem > mem:
        return FAIL, evidence + ": the nodes cannot hold it", "add nodes or use a smaller plan"
    if biggest is not None and not any(n.memory_gib >= biggest.memory_gib and n.cpu >= biggest.cpu for n in ready):
        return (FAIL, evidence + f": no node fits one {biggest.name} pod ({biggest.cpu:g} CPU, "
                f"{biggest.memory_gib:g} GiB)", "add a larger node pool")
    return PASS, evidence, ""


DEPENDENCY_NAMES = {"etcd": "etcd", "minio": "object storage (MinIO)", "pulsar": "Pulsar", "kafka": "Kafka"}


def check_dependencies(p: Probe) -> tuple[str, str, str]:
    if p.env.kubernetes is None:
        return NOT_CHECKED, "no `kubernetes:` section for this environment", _config_fix(p, "kubernetes")
    kube = p.ctx.services.kube(p.env)
    pods = kube.pods(p.namespace, "")
    facts: list[str] = []
    problems: list[str] = []
    for key, label in DEPENDENCY_NAMES.items():
        mine = [pod for pod in pods if key in pod.name]
        if not mine:
            if key == "etcd":
                problems.append("no etcd pods")
            continue
        ready = sum(pod.ready for pod in mine)
        (facts if ready == len(mine) else problems).append(f"{label} {ready}/{len(mine)} ready")
    claims = kube.volume_claims(p.namespace)
    unbound = sorted(name for name, phase in claims.items() if phase != "Bound")
    if unbound:
        problems.append(f"volumes not bound: {', '.join(unbound[:5])}")
    else:
        facts.append(f"{len(claims)} volume(s) bound")
    etcd_settings = kube.container_settings(p.namespace, "app.kubernetes.io/name=etcd")
    quota = any("ETCD_QUOTA_BACKEND_BYTES" in s or "--quota-backend-bytes" in s
                for settings in etcd_settings.values() for s in settings)
    evidence = "; ".join([*facts, *problems])
    if problems:
        return FAIL, evidence, f"kubectl -n {p.namespace} describe pods,pvc; then /milvus deploy {p.env.name}"
    if etcd_settings and not quota:
        return (WARN, evidence + "; etcd has no backend quota set (default 2 GiB)",
                "set etcd.extraEnvVars ETCD_QUOTA_BACKEND_BYTES in the helm values, then /milvus deploy")
    return PASS, evidence + ("; etcd quota set" if quota else ""), ""


def check_milvus(p: Probe) -> tuple[str, str, str]:
    from integrations.milvus import is_lite

    version = p.ctx.services.milvus(p.env).server_version()
    if is_lite(p.env.milvus.uri):
        return NOT_CHECKED, f"Milvus Lite {version} answers; it has no release or pods to check", ""
    if p.env.kubernetes is None or p.env.helm is None:
        return (NOT_CHECKED, f"Milvus {version} answers; without `helm:` and `kubernetes:` its release and "
                "components cannot be checked", _config_fix(p, "helm"))
    from integrations.kubernetes import milvus_selector, readiness

    status = p.ctx.services.helm(p.env).status(p.release, p.namespace)
    pods = readiness(p.ctx.services.kube(p.env).pods(p.namespace, milvus_selector(p.release)))
    wanted = p.env.helm.milvus_version
    evidence = (f"release {p.release}: {status.status if status else 'not installed'}"
                f"{f' (revision {status.revision})' if status else ''}; {pods.line()}; server reports {version}, "
                f"config wants {wanted}")
    fix = f"/milvus status {p.env.name}; /milvus deploy {p.env.name} --version {wanted}"
    if status is None or status.status != "deployed" or not pods.all_ready or pods.problems:
        return FAIL, evidence + ("; " + "; ".join(pods.problems[:3]) if pods.problems else ""), fix
    if wanted.lstrip("v") not in version:
        return WARN, evidence + ": version differs", fix
    return PASS, evidence, ""


def check_network_policy(p: Probe) -> tuple[str, str, str]:
    if p.env.kubernetes is None:
        return NOT_CHECKED, "no `kubernetes:` section for this environment", _config_fix(p, "kubernetes")
    from integrations.kubernetes import network_policy_body

    body = network_policy_body(p.namespace, p.release, p.env.kubernetes.client_namespaces)
    name = body["metadata"]["name"]
    spec = p.ctx.services.kube(p.env).network_policy_spec(p.namespace, name)
    fix = f"/milvus deploy {p.env.name} (it applies the policy)"
    if spec is None:
        return FAIL, f"no NetworkPolicy {name} in {p.namespace}: any pod can reach Milvus on 19530", fix
    clients = ", ".join(p.env.kubernetes.client_namespaces) or "none besides its own namespace"
    if spec != body["spec"]:
        return WARN, f"NetworkPolicy {name} differs from the one the bot manages (clients: {clients})", fix
    return PASS, f"NetworkPolicy {name} admits 19530 from: {clients}", ""


def check_security(p: Probe) -> tuple[str, str, str]:
    spec = p.runtime.registry.commands.get("security")
    if spec is None:
        return NOT_CHECKED, "security audit not available", ""
    held = p.runtime.policy.role_in(p.ctx.user, p.env.name)
    if spec.role is not None and (held is None or held < spec.role):
        # The checklist is open to viewers; the audit behind this item is not, so it is not run for them.
        return NOT_CHECKED, f"/milvus security needs the {spec.role.name} role, which you do not have here", ""
    reply = spec.handler(p.ctx, spec.args.model_validate({"env": p.env.name}))
    checks = list((reply.data or {}).get("checks") or [])
    counts = {s: sum(1 for c in checks if c.get("status") == s) for s in (PASS, WARN, FAIL, NOT_CHECKED)}
    bad = [str(c.get("id")) for c in checks if c.get("status") == FAIL]
    evidence = (f"/milvus security: {counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail, "
                f"{counts[NOT_CHECKED]} not checked" + (f" (failing: {', '.join(bad)})" if bad else ""))
    fix = f"/milvus security {p.env.name}"
    if counts[FAIL]:
        return FAIL, evidence, fix
    if counts[WARN]:
        return WARN, evidence, fix
    if not counts[PASS]:
        return NOT_CHECKED, evidence, fix
    return PASS, evidence, ""


def check_monitoring(p: Probe) -> tuple[str, str, str]:
    if not p.env.prometheus_url:
        return NOT_CHECKED, "no `prometheus_url` for this environment", _config_fix(p, "prometheus_url")
    prometheus = p.ctx.services.prometheus(p.env)
    facts, problems = [], []
    selector = _prometheus_selector(p.env)
    if selector is None:
        problems.append("cannot tell this environment's targets: set prometheus_namespace or prometheus_instance")
    else:
        ups = prometheus.query(f"up{{{selector}}}")
        up = sum(1 for s in ups if s.value == 1)
        if not ups:
            problems.append(f"Prometheus scrapes no target with {selector}")
        elif up < len(ups):
            problems.append(f"{up}/{len(ups)} targets up ({selector})")
        else:
            facts.append(f"{up}/{len(ups)} targets up")
    shipped = shipped_rules()
    loaded = prometheus.alert_rules()
    missing = sorted(set(shipped) - set(loaded))
    if missing:
        problems.append(f"{len(missing)} of {len(shipped)} shipped alert rules not loaded ({', '.join(missing[:4])})")
    else:
        facts.append(f"all {len(shipped)} shipped alert rules loaded")
    hours = p.runtime.config.readiness.notification_within_hours
    last = _last_notification(p)
    if last is None or p.now - last > dt.timedelta(hours=hours):
        seen = f"last at {last:%Y-%m-%d %H:%M} UTC" if last else "none ever"
        problems.append(f"no Alertmanager notification for {p.env.name} reached the bot in {hours:g} h ({seen})")
    else:
        facts.append(f"last Alertmanager notification {format_duration(p.now - last)} ago")
    evidence = "; ".join([*facts, *problems])
    if problems:
        return (FAIL, evidence, "load rules/milvus-alerts.yml into Prometheus and route Alertmanager to the bot's "
                "/alertmanager webhook (rules/alertmanager.example.yml; a Watchdog alert keeps it fresh)")
    return PASS, evidence, ""


def check_backup(p: Probe) -> tuple[str, str, str]:
    env = p.env
    if env.backup is None:
        return FAIL, "no backup target configured", _config_fix(p, "backup")
    from commands.backup import engine as backups

    policy = p.runtime.config.readiness
    facts: list[str] = []
    problems: list[str] = []
    listing = backups.list_backups(p.runtime, env)
    newest = listing.usable[0] if listing.usable else None
    interval = _cron_interval(env.backup.schedule, p.runtime.config.reports.timezone) if env.backup.schedule else None
    if interval is None:
        problems.append("no backup schedule")
    else:
        facts.append(f"schedule `{env.backup.schedule}` (every {format_duration(interval)})")
    if newest is None:
        problems.append("no usable backup")
    else:
        age = p.now - newest.created_at
        allowed = (interval or dt.timedelta(days=1)) + dt.timedelta(hours=policy.backup_slack_hours)
        line = f"last backup {newest.id} is {format_duration(age)} old"
        (problems if age > allowed else facts).append(line + (f" (over {format_duration(allowed)})"
                                                              if age > allowed else ""))
    verified = _last_verify(p)
    if verified is None:
        problems.append("no backup verified yet")
    elif not verified[1]:
        problems.append(f"last verify ({verified[0]}) failed")
    else:
        facts.append(f"last verify ({verified[0]}) good")
    drill = records.latest(p.runtime, env.name, records.DRILL_RESTORE)
    days = policy.restore_drill_days
    if drill is None or drill.age(p.now) > dt.timedelta(days=days):
        problems.append(f"no restore drill in {days:g} days")
    elif not drill.passed:
        problems.append(f"last restore drill ({format_duration(drill.age(p.now))} ago) did not verify")
    else:
        facts.append(f"restore drill {format_duration(drill.age(p.now))} ago verified "
                     f"(RTO {drill.result.get('rto_s', 0):,.0f} s)")
    evidence = "; ".join([*facts, *problems])
    if problems:
        fix = (f"set environments.{env.name}.backup.schedule; /milvus backup create {env.name}; "
               f"/milvus backup verify <id>; /milvus drill restore {env.name}")
        return FAIL, evidence, fix
    return PASS, evidence, ""


def check_performance(p: Probe) -> tuple[str, str, str]:
    days = p.runtime.config.readiness.loadtest_days
    run = records.latest(p.runtime, p.env.name, records.LOADTEST)
    fix = f"/milvus loadtest {p.env.name} --collection <name>"
    if run is None or run.age(p.now) > dt.timedelta(days=days):
        return FAIL, f"no load test in {days:g} days", fix
    r = run.result
    evidence = (f"load test of {r.get('collection')} {format_duration(run.age(p.now))} ago: {r.get('qps', 0):,.1f} "
                f"QPS, p99 {(r.get('latency_ms') or {}).get('p99')} ms, recall {r.get('recall_at_k')}, "
                f"{r.get('errors', 0)} error(s)")
    targets = r.get("targets") or {}
    if not targets:
        return WARN, evidence + "; no targets set to judge it", f"add targets: to environments.{p.env.name}"
    missed = [name for name, v in targets.items() if not v.get("met")]
    if missed or r.get("errors"):
        return FAIL, evidence + (f"; missed {', '.join(missed)}" if missed else "; searches failed"), fix
    return PASS, evidence + "; met every target", ""


def check_failure_drill(p: Probe) -> tuple[str, str, str]:
    if p.env.kubernetes is None:
        return NOT_CHECKED, "no `kubernetes:` section: pods cannot be drilled", _config_fix(p, "kubernetes")
    days = p.runtime.config.readiness.pod_drill_days
    run = records.latest(p.runtime, p.env.name, records.DRILL_POD)
    fix = f"/milvus drill pod {p.env.name} --component querynode"
    if run is None or run.age(p.now) > dt.timedelta(days=days):
        return FAIL, f"no pod drill in {days:g} days", fix
    r = run.result
    evidence = (f"{r.get('component')} drill {format_duration(run.age(p.now))} ago: "
                + (f"recovered in {r.get('recovery_s'):,.0f} s" if r.get("recovered") else "did not recover")
                + f", {r.get('failed_searches')} of {r.get('total_searches')} searches failed meanwhile"
                + f" (target {p.env.targets.pod_recovery_s:g} s)")
    return (PASS, evidence, "") if run.passed else (FAIL, evidence, fix)


def check_runbooks(p: Probe) -> tuple[str, str, str]:
    rules = shipped_rules()
    if not rules:
        return NOT_CHECKED, f"the shipped rules file {RULES_FILE.name} is not installed", ""
    missing = sorted(name for name, annotations in rules.items() if not annotations.get("runbook_url"))
    if missing:
        return (FAIL, f"{len(missing)} of {len(rules)} shipped alert rules have no runbook_url: "
                + ", ".join(missing), "add annotations.runbook_url to each rule in rules/milvus-alerts.yml")
    return PASS, f"all {len(rules)} shipped alert rules carry a runbook_url", ""


ITEMS: list[tuple[str, str, Check]] = [
    ("environment", "Environment planned", check_environment),
    ("capacity", "Capacity planned", check_capacity),
    ("kubernetes", "Kubernetes cluster", check_kubernetes),
    ("dependencies", "Dependencies deployed", check_dependencies),
    ("milvus", "Milvus deployed", check_milvus),
    ("network_policy", "Network policy", check_network_policy),
    ("security", "Security policy", check_security),
    ("monitoring", "Monitoring and alerting", check_monitoring),
    ("backup", "Backup and restore", check_backup),
    ("performance", "Performance test", check_performance),
    ("failure_drill", "Failure drill", check_failure_drill),
    ("runbooks", "Documentation and runbooks", check_runbooks),
]


def run_checklist(ctx: Context, env: Environment) -> list[Item]:
    probe = Probe(ctx, env)

    def one(entry: tuple[str, str, Check]) -> Item:
        item_id, title, check = entry
        try:
            status, evidence, fix = check(probe)
        except ChatOpsError as exc:
            status, evidence, fix = FAIL, exc.message, exc.hint or ""
        except Exception:
            log.exception("checklist item %s of %s failed", item_id, env.name)
            status, evidence, fix = NOT_CHECKED, "the check itself failed unexpectedly; see the bot's log", ""
        return Item(item_id, title, status, evidence, fix)

    # The items wait on different systems; asking them at once keeps the checklist as slow as the slowest.
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="checklist") as pool:
        return list(pool.map(one, ITEMS))


def summary_line(items: list[Item]) -> str:
    counts = {s: sum(1 for i in items if i.status == s) for s in (PASS, WARN, FAIL, NOT_CHECKED)}
    return (f"{counts[PASS]}/{len(items)} pass, {counts[WARN]} warn, {counts[FAIL]} fail, "
            f"{counts[NOT_CHECKED]} not checked")


def checklist_data(env: Environment, items: list[Item]) -> dict[str, Any]:
    return {"environment": env.name, "items": [i.as_data() for i in items],
            "passed": sum(1 for i in items if i.status == PASS), "total": len(items)}


def checklist_blocks(env: Environment, items: list[Item]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [bk.header(f"Readiness of {env.name}"), bk.section(summary_line(items))]
    for item in items:
        text = f"{ICONS[item.status]} *{bk.escape(item.title)}* ({item.status.replace('_', ' ')})\n"
        text += bk.escape(bk.truncate(item.evidence, 1200))
        if item.fix and item.status != PASS:
            fix = bk.escape(bk.truncate(item.fix, 400))
            # Commands to type are shown as code; advice about the config as plain text.
            typed = item.fix.startswith(("/milvus", "milvus-chatops", "kubectl"))
            text += f"\nFix: `{fix}`" if typed else f"\nFix: {fix}"
        blocks.append(bk.section(text))
    return bk.fit_blocks(blocks)


# -- facts -----------------------------------------------------------------------------------------------


def shipped_rules(path: Path = RULES_FILE) -> dict[str, dict[str, str]]:
    """Alert name -> annotations of every rule in the shipped rules file (empty when not installed)."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    return {str(rule["alert"]): dict(rule.get("annotations") or {})
            for group in doc.get("groups") or [] for rule in group.get("rules") or [] if rule.get("alert")}


def _pinged(prometheus: Any) -> str:
    prometheus.ping()
    return "up"


def _raise(text: str) -> str:
    from bot.errors import IntegrationError

    raise IntegrationError(text, system="alertmanager")


def _config_fix(p: Probe, key: str) -> str:
    return f"set environments.{p.env.name}.{key} in the bot's config"


def _prometheus_selector(env: Environment) -> str | None:
    labels = []
    if env.prometheus_instance:
        labels.append(f'app_kubernetes_io_instance="{env.prometheus_instance}"')
    if env.prometheus_namespace:
        labels.append(f'namespace="{env.prometheus_namespace}"')
    return ",".join(labels) or None


def _query_node_memory_gib(p: Probe) -> float | None:
    selector = _prometheus_selector(p.env)
    if not p.env.prometheus_url or selector is None:
        return None
    try:
        samples = p.ctx.services.prometheus(p.env).query(
            f'sum(container_memory_working_set_bytes{{{selector},pod=~".*querynode.*",container!=""}})')
    except ChatOpsError:
        return None
    return samples[0].value / 2**30 if samples else None


def _last_notification(p: Probe) -> dt.datetime | None:
    t = schema.alert_notifications
    with p.runtime.store.begin() as conn:
        at = conn.execute(select(t.c.received_at).where(t.c.environment == p.env.name)
                          .order_by(t.c.received_at.desc()).limit(1)).scalar()
    return as_utc(at) if at else None


def _last_verify(p: Probe) -> tuple[str, bool] | None:
    """The newest backup check: ``/milvus backup verify`` (from the audit log) or a restore drill."""
    t = schema.audit_log
    with p.runtime.store.begin() as conn:
        row = conn.execute(select(t.c.at, t.c.arguments, t.c.outcome)
                           .where(t.c.environment == p.env.name, t.c.action == "backup verify",
                                  t.c.outcome.in_(("ok", "rejected", "failed")))
                           .order_by(t.c.id.desc()).limit(1)).mappings().first()
    drill = records.latest(p.runtime, p.env.name, records.DRILL_RESTORE)
    verify = (as_utc(row["at"]), str((row["arguments"] or {}).get("backup_id", "?")), row["outcome"] == "ok") \
        if row else None
    if drill is not None and (verify is None or drill.finished_at > verify[0]):
        return f"restore drill of {drill.subject}", drill.passed
    return (verify[1], verify[2]) if verify else None


def _cron_interval(cron: str, timezone: str) -> dt.timedelta | None:
    from bot.scheduler import JobSpec, trigger_for

    trigger = trigger_for(JobSpec(job_id="probe", task="probe", cron=cron, timezone=timezone))
    first = trigger.get_next_fire_time(None, utcnow())
    second = trigger.get_next_fire_time(first, first + dt.timedelta(seconds=1)) if first else None
    return second - first if first and second else None


def _deployed_plan(runtime: Any, env: str) -> tuple[str, Any] | None:
    from commands.plan.render import PLANS_KV
    from commands.plan.sizing import PlanInput, plan

    t = schema.audit_log
    with runtime.store.begin() as conn:
        rows = conn.execute(select(t.c.arguments).where(t.c.environment == env, t.c.action == "deploy",
                                                        t.c.outcome == "ok").order_by(t.c.id.desc()).limit(50)).all()
    for (arguments,) in rows:
        plan_id = (arguments or {}).get("plan")
        stored = runtime.store.kv_get(PLANS_KV, plan_id) if plan_id else None
        if stored:
            return str(plan_id), plan(PlanInput.model_validate(stored))
    return None
