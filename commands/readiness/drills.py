"""/milvus drill restore | pod: rehearse the two recoveries an SRE must trust, and time them.

Restore drill: a backup is restored next to the originals under scratch names, checked (row counts,
object checksums, a sample of rows, and searches that must return the same ids as on the originals),
and the scratch collections are dropped whatever happened. RTO is how long the restore took; RPO is
the backup's age when the drill started (the data a real restore would lose).

Pod drill: one pod of a stateless component is deleted through the Kubernetes API while a search
runs every second; the drill reports how long until a replacement was Ready, how many searches failed
meanwhile, and whether the collection was still loaded afterwards.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context, Runtime
from bot.errors import ChatOpsError, NotFound, UsageError, UserError
from bot.registry import command
from bot.reply import Reply
from bot.state import utcnow
from bot.units import format_duration, parse_duration
from commands.approvals.workflow import ApprovalRequest, Approvals
from commands.readiness import records

SEARCH_CHECKS = 20
SEARCH_K = 10
# Searches on an approximate index may rank near-ties differently on two copies of the same data.
SEARCH_AGREEMENT = 0.95
STATELESS = ("proxy", "querynode", "datanode", "indexnode", "mixcoord", "rootcoord", "querycoord", "datacoord",
             "indexcoord")


def _say(progress: Any) -> Any:
    return progress or (lambda _text: None)


# -- restore drill ----------------------------------------------------------------------------------------


class DrillRestoreArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    backup: str | None = Field(None, description="backup id (default: the newest usable backup)")


@command(
    "drill restore",
    summary="Restore a backup into scratch collections, verify it against the originals, drop them; RTO and RPO",
    args=DrillRestoreArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus drill restore prod", "/milvus drill restore staging --backup staging-20260101-020000-ab12"),
)
def drill_restore(ctx: Context, args: DrillRestoreArgs) -> Reply:
    env = ctx.require_env()
    data = run_restore_drill(ctx.runtime, env, args.backup, user=ctx.user.user_id, progress=ctx.progress)
    return restore_reply(data)


@dataclass
class _Check:
    collection: str
    rows_expected: int
    rows_restored: int
    sample_mismatches: list[str] = field(default_factory=list)
    search: str = "not run"
    search_ok: bool = True


def run_restore_drill(runtime: Runtime, env: Environment, backup_id: str | None, *, user: str,
                      trigger: str = "manual", progress: Any = None) -> dict[str, Any]:
    from commands.backup.engine import list_backups
    from commands.backup.records import backup_target
    from commands.backup.restore import restore_backup

    say = _say(progress)
    backup_target(env)
    listing = list_backups(runtime, env)
    if not listing.usable:
        raise NotFound(f"`{env.name}` has no usable backup to drill with.",
                       hint=f"`/milvus backup create {env.name}` takes one.")
    found = next((r for r in listing.usable if r.id == backup_id), None) if backup_id else listing.usable[0]
    if found is None:
        raise NotFound(f"There is no usable backup `{bk.escape(backup_id or '')}` in `{env.name}`.",
                       hint=f"`/milvus backup list {env.name}` shows them.")
    record = found
    suffix = f"__drill_{secrets.token_hex(3)}"
    started_at = utcnow()
    rpo_s = (started_at - record.created_at).total_seconds()
    search = runtime.services.milvus_search(env)
    checks: list[_Check] = []
    error: str | None = None
    rto_s: float | None = None
    say(f"Restore drill: restoring {record.id} ({len(record.collections)} collection(s), {record.rows:,} rows) "
        f"into scratch collections `*{suffix}`")
    t0 = time.perf_counter()
    try:
        report = restore_backup(runtime, env, record.id, env, suffix=suffix, progress=say)
        rto_s = time.perf_counter() - t0
        for result in report.collections:
            check = _Check(result.source, result.rows_expected, result.rows_restored,
                           list(result.sample_mismatches))
            _compare_searches(search, env, result.source, result.target, check)
            checks.append(check)
    except ChatOpsError as exc:
        error = exc.message
    finally:
        dropped = _drop_scratch(search, suffix)
    verified = error is None and bool(checks) and all(
        c.rows_restored == c.rows_expected and not c.sample_mismatches and c.search_ok for c in checks)
    data: dict[str, Any] = {
        "environment": env.name,
        "backup_id": record.id,
        "collections": [c.collection for c in checks] or list(record.collections),
        "rows": sum(c.rows_restored for c in checks),
        "verified": verified,
        "rto_s": None if rto_s is None else round(rto_s, 3),
        "rpo_s": round(rpo_s, 3),
        "scratch_dropped": dropped,
        "checks": [c.__dict__ for c in checks],
        "error": error,
    }
    records.save(runtime, environment=env.name, kind=records.DRILL_RESTORE, subject=record.id,
                 started_at=started_at, passed=verified and dropped, result=data, created_by=user, trigger=trigger)
    return data


def _compare_searches(search: Any, env: Environment, source: str, scratch: str, check: _Check) -> None:
    from integrations.milvus import is_lite

    if not search.exists(source):
        check.search = "original no longer exists; counts and checksums only"
        return
    now_rows = search.count(source)
    if now_rows != check.rows_expected:
        check.search = f"original changed since the backup ({now_rows:,} rows now, {check.rows_expected:,} then)"
        return
    if not search.is_loaded(source):
        if not is_lite(env.milvus.uri):
            check.search = "original is not loaded (not loaded for a drill); counts and checksums only"
            return
        search.load(source)
    vf = search.vector_field(scratch)
    vectors = [v for _, v in search.sample(vf, SEARCH_CHECKS)]
    if not vectors:
        check.search = "no rows to search"
        return
    params = {"metric_type": vf.metric, "params": {}}
    on_original = search.search_ids(source, vectors, anns_field=vf.name, limit=SEARCH_K, search_params=params)
    on_scratch = search.search_ids(scratch, vectors, anns_field=vf.name, limit=SEARCH_K, search_params=params)
    shares = [len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(on_original, on_scratch, strict=True)]
    agreement = sum(shares) / len(shares)
    check.search_ok = agreement >= SEARCH_AGREEMENT
    check.search = f"{len(vectors)} searches, {agreement:.0%} of ids the same as on the original"


def _drop_scratch(search: Any, suffix: str) -> bool:
    """Drop every collection the drill made (restored or half-restored); True when none is left."""
    for _ in range(3):
        try:
            left = [name for name in search.collections() if suffix in name]
        except ChatOpsError:
            time.sleep(1)
            continue
        if not left:
            return True
        for name in left:
            try:
                search.drop(name)
            except ChatOpsError:
                time.sleep(1)
    return False


def restore_reply(data: dict[str, Any]) -> Reply:
    rto = "n/a" if data["rto_s"] is None else format_duration(data["rto_s"])
    outcome = "verified" if data["verified"] else "did NOT verify"
    text = (f"Restore drill of {data['backup_id']} in {data['environment']} {outcome}: {len(data['collections'])} "
            f"collection(s), {data['rows']:,} rows, RTO {rto}, RPO {format_duration(data['rpo_s'])}; scratch "
            f"collections {'dropped' if data['scratch_dropped'] else 'NOT all dropped'}.")
    lines = [
        f"`{bk.escape(c['collection'])}`: {c['rows_restored']:,}/{c['rows_expected']:,} rows"
        + (f", sample differs ({bk.escape(c['sample_mismatches'][0])})" if c["sample_mismatches"] else
           ", sample rows equal")
        + f"; {bk.escape(c['search'])}"
        for c in data["checks"]
    ]
    blocks = [bk.header("Restore drill"),
              bk.section(f"{':white_check_mark:' if data['verified'] else ':x:'} {bk.escape(text)}")]
    if lines:
        blocks.append(bk.section("\n".join(lines)))
    if data["error"]:
        blocks.append(bk.context(f"Failed: {bk.escape(data['error'])}"))
    return Reply(text=text, blocks=bk.fit_blocks(blocks), data=data, response_type="in_channel")


# -- pod drill ----------------------------------------------------------------------------------------------


class DrillPodArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    component: str = Field("querynode", description=f"stateless component: {', '.join(STATELESS)}")
    collection: str | None = Field(None, description="collection to probe (default: the first loaded one)")
    timeout: str = Field("10m", description="how long to wait for the replacement pod")


@command(
    "drill pod",
    summary="Delete one pod of a stateless component, probe searches every second, time the recovery",
    args=DrillPodArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus drill pod staging --component querynode", "/milvus drill pod prod --component proxy"),
)
def drill_pod(ctx: Context, args: DrillPodArgs) -> Reply:
    env = ctx.require_env()
    if args.component not in STATELESS:
        raise UsageError(f"{bk.code(args.component)} is not a stateless Milvus component.",
                         hint=f"Choose one of {', '.join(STATELESS)}.")
    if env.kubernetes is None:
        raise UserError(f"`{env.name}` has no `kubernetes:` section, so no pod can be drilled.",
                        hint=f"Set `environments.{env.name}.kubernetes` in the bot's config.")
    timeout_s = parse_duration(args.timeout, minimum=dt.timedelta(seconds=10), maximum=dt.timedelta(hours=1),
                               noun="timeout", examples="`5m` or `10m`").total_seconds()
    payload = {"env": env.name, "component": args.component, "collection": args.collection, "timeout_s": timeout_s}
    if env.needs_approval:
        title = f"Pod drill: delete one {args.component} pod in {env.name}"
        request = Approvals(ctx.runtime).request(
            ctx, kind="drill_pod", env=env.name, title=title,
            summary_blocks=[bk.section(bk.escape(f"{title}; searches are probed every second while it recovers."))],
            payload=payload,
        )
        text = (f"Approval requested: {title} (request `{request.id}`); "
                f"{request.approvals_required} approval(s) needed from approvers of `{env.name}`.")
        return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {bk.escape(text)}")],
                     data={"approval": request.to_data()})
    data = run_pod_drill(ctx.runtime, env, args.component, args.collection, timeout_s, user=ctx.user.user_id,
                         progress=ctx.progress)
    return pod_reply(data)


def execute_drill_pod(ctx: Context, request: ApprovalRequest) -> Reply:
    env = ctx.runtime.environment(request.environment)
    p = request.payload
    data = run_pod_drill(ctx.runtime, env, str(p["component"]), p.get("collection"), float(p["timeout_s"]),
                         user=request.requester, progress=ctx.progress)
    return pod_reply(data)


class _Prober:
    """One search a second until stopped; counts what failed."""

    def __init__(self, search: Any, collection: str, vector: list[float], anns_field: str, metric: str) -> None:
        self.total = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(search, collection, vector, anns_field, metric),
                                        name="drill-probe", daemon=True)

    def _run(self, search: Any, collection: str, vector: list[float], anns_field: str, metric: str) -> None:
        params = {"metric_type": metric, "params": {}}
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                search.search_raw(collection, [vector], anns_field=anns_field, limit=1, search_params=params)
            except Exception:
                self.failed += 1
            self.total += 1
            self._stop.wait(max(1.0 - (time.monotonic() - started), 0.0))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def run_pod_drill(runtime: Runtime, env: Environment, component: str, collection: str | None, timeout_s: float,
                  *, user: str, trigger: str = "manual", progress: Any = None) -> dict[str, Any]:
    from integrations.kubernetes import milvus_selector

    say = _say(progress)
    kube = runtime.services.kube(env)
    namespace = runtime.services.kube_target(env).namespace
    release = env.helm.release if env.helm else "milvus"
    selector = f"{milvus_selector(release)},component={component}"
    before = kube.pods(namespace, selector)
    ready_before = [p for p in before if p.ready]
    if not ready_before:
        raise UserError(f"No ready {component} pod of release `{release}` in `{namespace}` to drill.",
                        hint=f"`/milvus status {env.name}` shows the pods.")
    victim = sorted(ready_before, key=lambda p: p.name)[0]
    search = runtime.services.milvus_search(env)
    target = collection or next((c for c in search.collections() if search.is_loaded(c)), None)
    if target is None:
        raise UserError(f"`{env.name}` has no loaded collection to probe searches on.",
                        hint="Name one with `--collection`.")
    vf = search.vector_field(target)
    sample = search.sample(vf, 1)
    if not sample:
        raise UserError(f"Collection `{bk.escape(target)}` is empty; searches cannot be probed on it.")
    prober = _Prober(search, target, sample[0][1], vf.name, vf.metric)
    started_at = utcnow()
    prober.start()
    recovered, recovery_s, replacement = False, None, None
    try:
        say(f"Deleting pod {victim.name} ({component}); probing searches on {target} every second")
        t0 = time.monotonic()
        kube.delete_pod(namespace, victim.name)
        next_note = t0 + 15
        while time.monotonic() - t0 < timeout_s:
            pods = kube.pods(namespace, selector)
            fresh = [p for p in pods if p.ready and p.uid != victim.uid and p.uid not in {b.uid for b in before}]
            ready_now = [p for p in pods if p.ready and p.uid != victim.uid]
            if fresh and len(ready_now) >= len(ready_before):
                recovered, recovery_s, replacement = True, time.monotonic() - t0, fresh[0].name
                break
            if time.monotonic() >= next_note:
                next_note += 15
                say(f"{format_duration(time.monotonic() - t0)} after deleting {victim.name}: "
                    f"{len(ready_now)}/{len(ready_before)} {component} pod(s) ready; "
                    f"{prober.failed} of {prober.total} searches failed so far")
            time.sleep(1)
    finally:
        if recovered:
            time.sleep(1)  # one more probe against the recovered component
        prober.stop()
    loaded = _loaded(search, target)
    passed = recovered and loaded and recovery_s is not None and recovery_s <= env.targets.pod_recovery_s
    data: dict[str, Any] = {
        "environment": env.name,
        "component": component,
        "pod": victim.name,
        "recovered": recovered,
        "recovery_s": None if recovery_s is None else round(recovery_s, 3),
        "failed_searches": prober.failed,
        "total_searches": prober.total,
        "replacement": replacement,
        "collection": target,
        "collection_loaded": loaded,
        "target_recovery_s": env.targets.pod_recovery_s,
        "passed": passed,
    }
    records.save(runtime, environment=env.name, kind=records.DRILL_POD, subject=component, started_at=started_at,
                 passed=passed, result=data, created_by=user, trigger=trigger)
    return data


def _loaded(search: Any, collection: str) -> bool:
    try:
        return bool(search.is_loaded(collection))
    except ChatOpsError:
        return False


def pod_reply(data: dict[str, Any]) -> Reply:
    if data["recovered"]:
        how = f"a replacement ({data['replacement']}) was Ready after {data['recovery_s']:,.1f} s"
    else:
        how = "no replacement became Ready in time"
    text = (f"Pod drill in {data['environment']}: deleted {data['pod']} ({data['component']}); {how}; "
            f"{data['failed_searches']} of {data['total_searches']} searches failed meanwhile; collection "
            f"{data['collection']} {'still loaded' if data['collection_loaded'] else 'NOT loaded'}.")
    icon = ":white_check_mark:" if data["passed"] else ":x:"
    blocks = [bk.header("Pod drill"), bk.section(f"{icon} {bk.escape(text)}"),
              bk.context(f"Target: Ready within {data['target_recovery_s']:g} s "
                         f"(`targets.pod_recovery_s`).")]
    return Reply(text=text, blocks=blocks, data=data, response_type="in_channel")
