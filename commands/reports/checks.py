"""Health and capacity checks on Prometheus results: one coloured line per check.

Honesty rules: a series that does not exist is "not available" with the reason, never a zero; a zero
is shown only where the metric family is present and the label value is simply absent (Milvus creates
``status="fail"`` series on the first failure, so a present family without it means "none yet").
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot import blocks as bk
from bot.config import HealthThresholds
from bot.units import format_bytes, format_duration
from commands.reports.forecast import DAY, MIN_FIT_WINDOW_S, Forecast, forecast, linear_fit
from integrations.prometheus import Instant, Range, Series

log = logging.getLogger("milvus_chatops.reports")

GIB = 1024**3
MIB = 1024**2
LOAD_THRESHOLD = 0.90  # queryCoord.overloadedMemoryThresholdPercentage: loads above this are refused
PLAN_HORIZON_DAYS = 90


class Status(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"
    unknown = "unknown"  # not measured: the line says why


_RANK = {Status.unknown: 0, Status.green: 1, Status.yellow: 2, Status.red: 3}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.unknown)


def grade(value: float, warn: float, crit: float) -> Status:
    if value >= crit:
        return Status.red
    if value >= warn:
        return Status.yellow
    return Status.green


@dataclass
class Line:
    key: str
    label: str
    status: Status
    text: str
    value: float | None = None
    details: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self.status is not Status.unknown

    def to_data(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "status": self.status.value,
            "available": self.available,
            "value": None if self.value is None or math.isnan(self.value) else self.value,
            "text": self.text,
            "details": self.details,
        }


def _why(result: Instant | Range) -> str:
    """Why a result has no value, safe to put in mrkdwn (Prometheus errors quote PromQL, with its < and >)."""
    return bk.escape(result.reason)


def not_available(key: str, label: str, reason: str) -> Line:
    return Line(key, label, Status.unknown, f"not available: {reason}")


@dataclass
class Recommendation:
    text: str
    plan_args: dict[str, Any]  # what /milvus plan gets prefilled with
    query_nodes: dict[str, Any] | None = None

    def to_data(self) -> dict[str, Any]:
        return {"text": self.text, "plan_args": self.plan_args, "query_nodes": self.query_nodes}


def fmt_num(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def fmt_unit(value: float, unit: str) -> str:
    return format_bytes(value) if unit == "bytes" else f"{fmt_num(value)} {unit}"


def _component_of(labels: dict[str, str]) -> str:
    return labels.get("component") or labels.get("job") or labels.get("instance") or "target"


def health_lines(r: dict[str, Instant], th: HealthThresholds) -> list[Line]:
    lines: list[Line] = []

    # Components: scrape targets up/down, plus the roles Milvus reports alive.
    up, nodes = r["up"], r["nodes"]
    if up.ok:
        down = sorted({_component_of(x.labels) + " " + x.labels.get("instance", "") for x in up.samples if x.value < 1})
        total = len(up.samples)
        roles = ", ".join(f"{x.labels.get('role_name', '?')} {x.value:.0f}" for x in nodes.samples) if nodes.ok else ""
        text = f"{total - len(down)} of {total} targets up" + (f" ({roles})" if roles else "")
        lines.append(
            Line(
                "components",
                "Components",
                Status.red if down else Status.green,
                text,
                float(len(down)),
                [f"down: {bk.escape(d.strip())}" for d in down],
            )
        )
    else:
        lines.append(not_available("components", "Components", _why(up)))

    for key, label in (("search_qps", "Search QPS"), ("insert_qps", "Insert QPS")):
        res = r[key]
        value = res.scalar()
        if value is None:
            lines.append(not_available(key, label, _why(res)))
        else:
            lines.append(Line(key, label, Status.green, f"{fmt_num(value)}/s (5 min average)", value))

    for key, label, warn, crit in (
        ("search_p99", "Search p99", th.search_p99_ms_warn, th.search_p99_ms_crit),
        ("query_p99", "Query p99", th.query_p99_ms_warn, th.query_p99_ms_crit),
        ("insert_p99", "Insert p99", th.insert_p99_ms_warn, th.insert_p99_ms_crit),
        ("queue_p99", "Query node queueing p99", th.queue_p99_ms_warn, th.queue_p99_ms_crit),
    ):
        lines.append(_latency_line(key, label, r[key], warn, crit))

    errors = r["errors"]
    if errors.ok:
        ratios = sorted(
            ((x.labels.get("function_name", "?"), x.value) for x in errors.samples if not math.isnan(x.value)),
            key=lambda p: -p[1],
        )
        if ratios:
            top = ratios[0][1]
            failing = [f"{bk.escape(fn)}: {ratio:.2%}" for fn, ratio in ratios if ratio > 0]
            text = f"worst {bk.escape(ratios[0][0])} {top:.2%} over {len(ratios)} operations (5 min)"
            lines.append(
                Line(
                    "errors",
                    "Error ratio",
                    grade(top, th.error_ratio_warn, th.error_ratio_crit),
                    text if top > 0 else f"no failed requests over {len(ratios)} operations (5 min)",
                    top,
                    failing,
                )
            )
        else:
            lines.append(Line("errors", "Error ratio", Status.green, "no requests in the last 5 min", None))
    else:
        lines.append(not_available("errors", "Error ratio", _why(errors)))

    lines.append(_throttling_line(r))

    lag_parts = [(name, r[key].scalar()) for key, name in (("qn_lag", "query node"), ("dn_lag", "data node"))]
    measured = [(name, v) for name, v in lag_parts if v is not None]
    if measured:
        _, value = max(measured, key=lambda p: p[1])
        text = ", ".join(f"{n} {fmt_ms(v)}" for n, v in measured)
        lines.append(
            Line(
                "consume_lag",
                "Consume lag",
                grade(value, th.consume_lag_ms_warn, th.consume_lag_ms_crit),
                f"max {text}",
                value,
            )
        )
    else:
        lines.append(not_available("consume_lag", "Consume lag", _why(r["qn_lag"])))

    restarts, oom = r["restarts"], r["oom"]
    if restarts.ok:
        by_pod = {x.labels.get("pod", "?"): x.value for x in restarts.samples}
        restart_total = float(sum(by_pod.values()))
        ooms = sorted(x.labels.get("pod", "?") for x in oom.samples if x.value >= 1) if oom.ok else []
        restart_status = grade(restart_total, th.restarts_per_hour_warn, th.restarts_per_hour_crit)
        status = worst([restart_status, Status.red if ooms else Status.green])
        details = [f"{bk.escape(p)}: {v:.0f}" for p, v in sorted(by_pod.items()) if v >= 0.5]
        details += [f"{bk.escape(p)}: last terminated by OOMKilled" for p in ooms]
        lines.append(
            Line(
                "restarts",
                "Pod restarts / OOM kills",
                status,
                f"{restart_total:.0f} restarts in the last hour, {len(ooms)} OOM-killed",
                restart_total,
                details,
            )
        )
    else:
        reason = _why(restarts)
        if not restarts.error:
            reason = "no kube-state-metrics series (kube_pod_container_status_restarts_total) for these pods"
        lines.append(not_available("restarts", "Pod restarts / OOM kills", reason))

    loads = r["load_failures"]
    value = loads.scalar()
    if value is None:
        lines.append(not_available("load_failures", "Collection load failures", _why(loads)))
    else:
        lines.append(
            Line(
                "load_failures",
                "Collection load failures",
                Status.red if value >= 0.5 else Status.green,
                f"{value:.0f} in the last hour",
                value,
            )
        )
    return lines


def _latency_line(key: str, label: str, res: Instant, warn: float, crit: float) -> Line:
    value = res.scalar()
    if value is None:
        return not_available(key, label, _why(res))
    if math.isnan(value):
        # histogram_quantile over a window without requests: idle, which is not the same as 0 ms.
        return Line(key, label, Status.green, "idle: no requests in the last 5 min", None)
    return Line(key, label, grade(value, warn, crit), fmt_ms(value), value)


def _throttling_line(r: dict[str, Instant]) -> Line:
    key, label = "throttling", "Write throttling / memory protection"
    parts: list[str] = []
    statuses: list[Status] = []
    details: list[str] = []
    limited = r["rate_limited"].scalar()
    if limited is not None:
        parts.append(f"{fmt_num(limited)} rate-limited req/s")
        statuses.append(Status.yellow if limited > 0 else Status.green)
    denied = r["deny_writing"].scalar()
    if denied is not None:
        parts.append(f"writes force-denied {denied:.0f} times in 15 min")
        statuses.append(Status.red if denied >= 0.5 else Status.green)
    quota = r["quota_states"]
    if quota.ok:
        active = sorted(x.labels.get("quota_states", "?") for x in quota.samples if x.value >= 1)
        parts.append("quota states: " + (", ".join(bk.escape(a) for a in active) if active else "none active"))
        statuses.append(Status.red if active else Status.green)
        details += [f"{bk.escape(a)} is active" for a in active]
    if not parts:
        return not_available(key, label, _why(r["quota_states"]))
    missing = [n for n, v in (("rate limiting", limited), ("force-deny counter", denied)) if v is None]
    if missing:
        details.append("not available: " + ", ".join(missing) + " (no such series)")
    return Line(key, label, worst(statuses), "; ".join(parts), None, details)


def _runway(fc: Forecast, now: dt.datetime, th: HealthThresholds) -> tuple[Status, str]:
    """How soon the forecast runs out, as a status and a note for the line (empty when far off)."""
    if fc.runs_out_at is None:
        return Status.green, ""
    days = (fc.runs_out_at - now).total_seconds() / DAY
    status = grade(-days, -th.runway_days_warn, -th.runway_days_crit)
    if status is Status.green:
        return status, ""
    when = "already" if days <= 0 else f"in {days:.1f} days"
    return status, f"; reaches {fc.limit_label} {when} at the current growth"


def _labels_name(labels: dict[str, str], by_id: dict[str, str] | None = None) -> str:
    name = labels.get("collection_name")
    db = labels.get("db_name")
    if name:
        return f"{db}.{name}" if db else name
    cid = labels.get("collection_id", "?")
    if by_id and cid in by_id:
        return f"{by_id[cid]} (id {cid})"
    return f"collection id {cid}"


CollectionNames = Callable[[], dict[str, str]]


def collection_names_from(client: Any, *, timeout_s: float = 10.0, limit: int = 200) -> CollectionNames:
    """Collection id -> name from Milvus, for versions whose metrics carry only ids (2.3)."""

    def names() -> dict[str, str]:
        out: dict[str, str] = {}
        for name in list(client.list_collections(timeout=timeout_s))[:limit]:
            described = client.describe_collection(name, timeout=timeout_s)
            out[str(described.get("collection_id"))] = name
        return out

    return names


def capacity_lines(
    r: dict[str, Instant],
    ranges: dict[str, Range],
    th: HealthThresholds,
    now: dt.datetime,
    names: CollectionNames | None = None,
) -> tuple[list[Line], list[Forecast], dict[str, Any]]:
    lines: list[Line] = []
    forecasts: list[Forecast] = []
    facts: dict[str, Any] = {}

    # Rows per collection, with growth per day fitted on the window.
    rows_res = r["rows_rootcoord"] if r["rows_rootcoord"].ok else r["rows_datacoord"]
    if rows_res.ok:
        source = "" if rows_res is r["rows_rootcoord"] else " (flushed rows only: this Milvus has no row count metric)"
        by_id: dict[str, str] = {}
        if names is not None and any("collection_name" not in x.labels for x in rows_res.samples):
            try:
                by_id = names()
            except Exception as exc:  # names are a courtesy: the row counts stand without them
                log.info("collection names not available: %s", exc)
                source += "; collection names not available from Milvus"
        growth: dict[str, float] = {}
        by_coll = ranges.get("rows_by_collection")
        if by_coll is not None and by_coll.ok:
            for s in by_coll.series:
                fit = linear_fit(s.points)
                if fit is not None and fit.window_s >= MIN_FIT_WINDOW_S:
                    growth[_labels_name(s.labels, by_id)] = fit.slope * DAY
        total = sum(x.value for x in rows_res.samples)
        details = []
        for x in sorted(rows_res.samples, key=lambda x: -x.value):
            name = _labels_name(x.labels, by_id)
            g = growth.get(name)
            per_day = f", {'+' if g >= 0 else ''}{fmt_num(g)}/day" if g is not None else ""
            details.append(f"{bk.escape(name)}: {x.value:,.0f} rows{per_day}")
        total_fit = linear_fit(ranges["rows"].series[0].points) if ranges.get("rows") and ranges["rows"].ok else None
        growth_text = ""
        if total_fit is not None and total_fit.window_s >= MIN_FIT_WINDOW_S:
            facts["rows_per_day"] = total_fit.slope * DAY
            growth_text = f", {fmt_num(total_fit.slope * DAY)}/day over {format_duration(total_fit.window_s)}"
        elif total_fit is not None:
            growth_text = f"; growth not measured: only {format_duration(total_fit.window_s)} of data"
        facts["rows"] = total
        lines.append(
            Line(
                "rows",
                "Rows",
                Status.green,
                f"{total:,.0f} in {len(rows_res.samples)} collection{'s' if len(rows_res.samples) != 1 else ''}"
                f"{growth_text}{source}",
                total,
                details,
            )
        )
    else:
        lines.append(not_available("rows", "Rows", _why(rows_res)))

    # Object storage: binlogs and index files.
    binlog, index = r["binlog_bytes"].scalar(), r["index_bytes"].scalar()
    if binlog is None and index is None:
        lines.append(not_available("object_storage", "Object storage", _why(r["binlog_bytes"])))
    else:
        parts = [
            f"binlogs {format_bytes(binlog)}"
            if binlog is not None
            else f"binlogs not available ({_why(r['binlog_bytes'])})"
        ]
        parts.append(
            f"index files {format_bytes(index)}"
            if index is not None
            else f"index files not available ({_why(r['index_bytes'])})"
        )
        used = (binlog or 0) + (index or 0)
        facts["binlog_bytes"] = binlog
        lines.append(Line("object_storage", "Object storage", Status.green, ", ".join(parts), used))

    # Query node memory against limits and the 90% load threshold.
    mem_line, mem_forecast, mem_facts = _memory(r, ranges, th, now)
    lines.append(mem_line)
    facts.update(mem_facts)
    if mem_forecast:
        forecasts.append(mem_forecast)

    # Local disk for DiskANN / mmap (Milvus reports MB).
    disk = r["disk_mb"]
    if disk.ok:
        used_mb = sum(x.value for x in disk.samples)
        cap = r["disk_capacity"].scalar()
        cap_bytes = sum(x.value for x in r["disk_capacity"].samples) if cap is not None else None
        used = used_mb * MIB
        if cap_bytes:
            ratio = used / cap_bytes
            status = grade(ratio, th.disk_ratio_warn, th.disk_ratio_crit)
            text = f"{format_bytes(used)} of {format_bytes(cap_bytes)} ({ratio:.0%})"
        else:
            status = Status.green
            text = f"{format_bytes(used)} used; capacity not available (no kubelet_volume_stats_capacity_bytes series)"
        fc = forecast(
            "disk", "bytes", _scaled(ranges.get("disk_mb"), MIB), used, cap_bytes, "the volume's capacity", now
        )
        if fc:
            forecasts.append(fc)
            runway, note = _runway(fc, now, th)
            status, text = worst([status, runway]), text + note
        lines.append(
            Line(
                "local_disk",
                "Local disk (DiskANN / mmap)",
                status,
                text,
                used,
                [f"node {bk.escape(x.labels.get('node_id', '?'))}: {format_bytes(x.value * MIB)}"
                 for x in disk.samples],
            )
        )
    else:
        lines.append(not_available("local_disk", "Local disk (DiskANN / mmap)", _why(disk)))

    segs = r["segments"]
    if segs.ok:
        by_state = {x.labels.get("segment_state", "?"): x.value for x in segs.samples}
        text = ", ".join(f"{bk.escape(k)} {v:,.0f}" for k, v in sorted(by_state.items()) if v > 0) or "none"
        lines.append(Line("segments", "Segments", Status.green, text, sum(by_state.values())))
    else:
        lines.append(not_available("segments", "Segments", _why(segs)))

    lines.append(_backlog_line(r))

    # etcd database against its quota ("mvcc: database space exceeded" stops every write).
    size, quota = r["etcd_size"].scalar(), r["etcd_quota"].scalar()
    if size is None:
        lines.append(not_available("etcd", "etcd database", _why(r["etcd_size"])))
    else:
        if quota:
            ratio = size / quota
            status = grade(ratio, th.etcd_ratio_warn, th.etcd_ratio_crit)
            text = f"{format_bytes(size)} of {format_bytes(quota)} quota ({ratio:.0%})"
        else:
            status, text = Status.green, f"{format_bytes(size)}; quota not available ({_why(r['etcd_quota'])})"
        fc = forecast("etcd", "bytes", ranges.get("etcd_size"), size, quota, "the quota", now)
        if fc:
            forecasts.append(fc)
            runway, note = _runway(fc, now, th)
            status, text = worst([status, runway]), text + note
        lines.append(Line("etcd", "etcd database", status, text, size))
    return lines, forecasts, facts


def _scaled(rng: Range | None, factor: float) -> Range | None:
    if rng is None or not rng.ok:
        return rng
    return Range(rng.query, [Series(s.labels, [(t, v * factor) for t, v in s.points]) for s in rng.series])


def _memory(
    r: dict[str, Instant], ranges: dict[str, Range], th: HealthThresholds, now: dt.datetime
) -> tuple[Line, Forecast | None, dict[str, Any]]:
    key, label = "qn_memory", "Query node memory"
    facts: dict[str, Any] = {}
    count = r["qn_count"].scalar()
    if count is not None:
        facts["query_nodes"] = int(count)
    loaded = r["qn_loaded"]
    loaded_text = f"; loaded segments {format_bytes(sum(x.value for x in loaded.samples))}" if loaded.ok else ""
    mem, limit = r["qn_memory"], r["qn_limit"]
    if mem.ok:
        used = sum(x.value for x in mem.samples)
        series = ranges.get("qn_memory")
        source = "working set"
    else:
        # Without cAdvisor (bare metal, or a standalone test server) the process RSS is the best we have.
        proc = r["process_memory"]
        samples = [x for x in proc.samples if x.labels.get("component", "querynode") in ("querynode", "standalone")]
        if not proc.ok or not samples:
            return not_available(key, label, _why(mem) + " (container_memory_working_set_bytes)"), None, facts
        used = sum(x.value for x in samples)
        series = ranges.get("process_memory")
        source = "process RSS; no container metrics"
    facts["memory_bytes"] = used
    limit_bytes = sum(x.value for x in limit.samples) if limit.ok else None
    if limit_bytes:
        ratio = used / limit_bytes
        status = grade(ratio, th.memory_ratio_warn, th.memory_ratio_crit)
        headroom = LOAD_THRESHOLD * limit_bytes - used
        text = (
            f"{format_bytes(used)} of {format_bytes(limit_bytes)} limit ({ratio:.0%}; loads are refused above"
            f" {LOAD_THRESHOLD:.0%}, {format_bytes(max(headroom, 0))} left) ({source}){loaded_text}"
        )
        facts["memory_limit_bytes"] = limit_bytes
    else:
        status = Status.green
        text = f"{format_bytes(used)} ({source}); limit not available ({_why(limit)}){loaded_text}"
    fc = forecast(
        "memory",
        "bytes",
        series,
        used,
        LOAD_THRESHOLD * limit_bytes if limit_bytes else None,
        "the 90% load threshold",
        now,
    )
    if fc:
        runway, note = _runway(fc, now, th)
        status, text = worst([status, runway]), text + note
        facts["memory_runs_out_at"] = fc.runs_out_at
    details = [f"{bk.escape(x.labels.get('pod', '?'))}: {format_bytes(x.value)}" for x in mem.samples] if mem.ok else []
    return Line(key, label, status, text, used, details), fc, facts


def _backlog_line(r: dict[str, Instant]) -> Line:
    key, label = "backlog", "Index / compaction backlog"
    parts: list[str] = []
    value = 0.0
    pending_states = {"unissued", "in-progress", "inprogress", "init", "pending", "executing", "retry", "building"}
    index = r["index_tasks"] if r["index_tasks"].ok else r["index_tasks_old"]
    if index.ok:
        by_state = {
            x.labels.get("task_state") or x.labels.get("index_task_status", "?"): x.value for x in index.samples
        }
        pending = sum(v for k, v in by_state.items() if k.lower().replace("_", "-") in pending_states)
        failed = sum(v for k, v in by_state.items() if "fail" in k.lower())
        value += pending
        parts.append(f"index tasks pending {pending:.0f}, failed {failed:.0f}")
    else:
        parts.append(f"index tasks not available ({_why(index)})")
    comp = r["compaction_tasks"]
    if comp.ok:
        by_status = {x.labels.get("status", "?"): x.value for x in comp.samples}
        executing = sum(v for k, v in by_status.items() if k.lower() in pending_states)
        value += executing
        parts.append(f"compactions executing {executing:.0f}")
    else:
        parts.append(f"compaction tasks not available ({_why(comp)})")
    if not index.ok and not comp.ok:
        return not_available(key, label, f"index tasks: {_why(index)}; compaction tasks: {_why(comp)}")
    # A backlog is normal briefly; it matters in the forecast of how fresh indexes are, not as an outage.
    return Line(key, label, Status.yellow if value >= 100 else Status.green, "; ".join(parts), value)


def recommend(env: str, facts: dict[str, Any], now: dt.datetime) -> Recommendation | None:
    """Ask the planner what the projected data needs, when the planner is installed."""
    rows = facts.get("rows")
    if not rows:
        return None
    try:
        from commands.plan import sizing
    except ImportError:
        return None
    per_day = max(facts.get("rows_per_day") or 0.0, 0.0)
    projected = int(rows + per_day * PLAN_HORIZON_DAYS)
    binlog = facts.get("binlog_bytes")
    # Prometheus has no vector dimension; estimate it from bytes per stored row (float32 vectors
    # plus the primary key and timestamp columns). The button lets the user correct it.
    if binlog:
        dim = int(min(max((binlog / rows - 24) / 4, 2), sizing.MAX_DIM))
        dim_note = f"dim ≈ {dim} estimated from {binlog / rows:,.0f} stored bytes per row"
    else:
        dim, dim_note = 768, "dim 768 assumed (no binlog size to estimate it from)"
    growth_month = int(per_day * 30)
    args: dict[str, Any] = {"vectors": projected, "dim": dim}
    if growth_month:
        args.update(growth_per_month=growth_month, months=12)
    try:
        plan = sizing.plan(sizing.PlanInput(vectors=max(projected, 1), dim=dim))
    except Exception:  # the planner is another feature's code; a report must not fail because of it
        log.warning("planner failed for %s", env, exc_info=True)
        return None
    qn = plan.query_nodes
    shape = f"{qn.cpu:g}c/{qn.memory_gib:g}G"
    current = facts.get("query_nodes")
    deadline = facts.get("memory_runs_out_at") or now + dt.timedelta(days=PLAN_HORIZON_DAYS)
    basis = f"{projected:,} rows in {PLAN_HORIZON_DAYS} days at {fmt_num(per_day)}/day; {dim_note}"
    if current is not None and qn.count > current:
        text = f"Add {qn.count - current} query node(s) of {shape} before *{deadline:%Y-%m-%d}* ({basis})."
    elif current is not None:
        text = (
            f"The planner needs {qn.count} query node(s) of {shape} for {basis}: today's {current} are enough"
            " if they are at least that size."
        )
    else:
        text = f"Plan for {qn.count} query node(s) of {shape} ({basis})."
    return Recommendation(text, args, {"count": qn.count, "cpu": qn.cpu, "memory_gib": qn.memory_gib})
