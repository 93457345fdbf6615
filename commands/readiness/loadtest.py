"""/milvus loadtest: real searches against a collection, with latency, QPS, errors and recall@k.

Query vectors are read from the collection itself. Recall is measured for a sample of the queries
against an exact search computed here: the collection's vectors are read batch by batch with a query
iterator and ranked with numpy (the sample's top-k kept per batch), so memory stays small and the
answer does not depend on any index. Collections above ``EXACT_MAX_ROWS`` are not scanned: recall is
then reported as not measured, with why.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context, Runtime
from bot.errors import UsageError
from bot.registry import command
from bot.reply import Attachment, Reply
from bot.state import utcnow
from bot.units import format_duration, parse_duration
from commands.approvals.workflow import ApprovalRequest, Approvals
from commands.readiness import records
from commands.readiness.loadgen import ExactTopK, LoadSpec, run_load
from integrations.milvus import is_lite

EXACT_MAX_ROWS = 2_000_000
QUERY_POOL = 1000  # vectors read from the collection to draw queries from
MAX_DURATION = dt.timedelta(hours=1)


class LoadtestArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    collection: str = Field(description="collection to search")
    duration: str = Field("30s", description="how long to send searches, e.g. 30s, 5m")
    concurrency: int = Field(4, ge=1, le=64, description="searches in flight at once")
    qps: float | None = Field(None, gt=0, le=100_000,
                              description="fixed rate (open loop) instead of as fast as answered")
    topk: int = Field(10, ge=1, le=16384, description="results per query (the k of recall@k)")
    nq: int = Field(1, ge=1, le=1000, description="query vectors per search request")
    filter: str | None = Field(None, description="boolean filter expression applied to every search")
    search_params: str | None = Field(None, description='index search parameters: `nprobe=16` or `{"ef": 64}`')
    recall_sample: int = Field(20, ge=0, le=1000, description="queries checked against exact search (0: none)")

    @field_validator("collection")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("is not a collection name (letters, digits and _)")
        return value


def parse_search_params(text: str | None) -> dict[str, Any]:
    """``nprobe=16,ef=64`` or a JSON object."""
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UsageError(f"{bk.code(text)} is not a JSON object.", hint='Write e.g. `--search-params nprobe=16`.')
        return parsed
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{bk.code(part)} is not `name=value`.", hint="Write e.g. `--search-params nprobe=16`.")
        raw = value.strip()
        try:
            out[key.strip()] = int(raw)
        except ValueError:
            try:
                out[key.strip()] = float(raw)
            except ValueError:
                out[key.strip()] = raw
    return out


@dataclass
class Plan:
    """The validated, capped run: what an approval is bound to and what the executor runs."""

    collection: str
    duration_s: float
    concurrency: int
    qps: float | None
    topk: int
    nq: int
    filter: str
    search_params: dict[str, Any]
    recall_sample: int

    def payload(self, env: str) -> dict[str, Any]:
        return {"env": env, **self.__dict__}


def make_plan(env: Environment, args: LoadtestArgs) -> Plan:
    duration = parse_duration(args.duration, minimum=dt.timedelta(seconds=1), maximum=MAX_DURATION,
                              noun="load test duration", examples="`30s`, `2m` or `10m`").total_seconds()
    concurrency, qps = args.concurrency, args.qps
    if env.production:
        limits = env.loadtest
        if duration > limits.max_duration_s:
            raise UsageError(
                f"A load test in production may run at most {format_duration(limits.max_duration_s)}.",
                hint=f"Use `--duration {int(limits.max_duration_s)}s` or less (config: "
                     f"`environments.{env.name}.loadtest.max_duration_s`).",
            )
        if qps is not None and qps > limits.max_qps:
            raise UsageError(
                f"A load test in production may send at most {limits.max_qps:g} searches per second.",
                hint=f"Use `--qps {limits.max_qps:g}` or less (config: `environments.{env.name}.loadtest.max_qps`).",
            )
        # Production traffic shares the cluster: never run open-ended, always at a bounded rate.
        qps = qps or limits.max_qps
        concurrency = min(concurrency, limits.max_concurrency)
    return Plan(args.collection, duration, concurrency, qps, args.topk, args.nq, args.filter or "",
                parse_search_params(args.search_params), args.recall_sample)


@command(
    "loadtest",
    summary="Load-test searches on a collection: QPS, latency p50/p95/p99, errors, recall@k, chart",
    args=LoadtestArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus loadtest staging --collection products --duration 60s --concurrency 8",
              "/milvus loadtest prod --collection products --qps 20 --search-params nprobe=16"),
)
def loadtest(ctx: Context, args: LoadtestArgs) -> Reply:
    env = ctx.require_env()
    plan = make_plan(env, args)
    ctx.services.milvus_search(env).vector_field(plan.collection)  # refuse a missing collection before asking
    if env.needs_approval:
        title = f"Load test {plan.collection} in {env.name} for {format_duration(plan.duration_s)}"
        rate = f"{plan.qps:g} searches/s" if plan.qps else f"{plan.concurrency} concurrent searches"
        request = Approvals(ctx.runtime).request(
            ctx, kind="loadtest", env=env.name, title=title,
            summary_blocks=[bk.section(bk.escape(f"{title} at {rate}, top {plan.topk}, {plan.nq} vector(s) each."))],
            payload=plan.payload(env.name),
        )
        text = (f"Approval requested: {title} (request `{request.id}`); "
                f"{request.approvals_required} approval(s) needed from approvers of `{env.name}`.")
        return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {bk.escape(text)}")],
                     data={"approval": request.to_data()})
    return run_loadtest(ctx.runtime, env, plan, user=ctx.user.user_id, progress=ctx.progress)


def execute_loadtest(ctx: Context, request: ApprovalRequest) -> Reply:
    env = ctx.runtime.environment(request.environment)
    payload = dict(request.payload)
    payload.pop("env", None)
    plan = Plan(**payload)
    Approvals(ctx.runtime).check_payload(request, plan.payload(env.name))
    return run_loadtest(ctx.runtime, env, plan, user=request.requester, progress=ctx.progress)


# -- running ---------------------------------------------------------------------------------------------


def run_loadtest(runtime: Runtime, env: Environment, plan: Plan, *, user: str, trigger: str = "manual",
                 progress: Any = None) -> Reply:
    say = progress or (lambda _text: None)
    started_at = utcnow()
    search = runtime.services.milvus_search(env)
    vf = search.vector_field(plan.collection)
    if not search.is_loaded(plan.collection) and is_lite(env.milvus.uri):
        # Milvus Lite forgets load state when its file is reopened; loading it costs nothing shared.
        search.load(plan.collection)
    if not search.is_loaded(plan.collection):
        raise UsageError(f"Collection `{bk.escape(plan.collection)}` is not loaded, so it cannot be searched.",
                         hint="Load it first (in pymilvus: `client.load_collection(name)`).")
    pool = [v for _, v in search.sample(vf, QUERY_POOL)]
    if not pool:
        raise UsageError(f"Collection `{bk.escape(plan.collection)}` has no rows to draw query vectors from.")
    rng = random.Random(0)  # the same queries for the same data: runs stay comparable
    rng.shuffle(pool)
    batches = [[pool[(i * plan.nq + j) % len(pool)] for j in range(plan.nq)] for i in range(max(len(pool), 64))]
    params = {"metric_type": vf.metric, "params": plan.search_params}

    def one(vectors: list[list[float]]) -> Any:
        return search.search_raw(plan.collection, vectors, anns_field=vf.name, limit=plan.topk,
                                 search_params=params, filter=plan.filter)

    mode = f"{plan.qps:g} searches/s" if plan.qps else f"{plan.concurrency} concurrent"
    say(f"Load test of {plan.collection} ({vf.index_type or 'no index'}, {mode}) for "
        f"{format_duration(plan.duration_s)} started")
    # A few progress lines even for a short run; transports throttle what they show.
    every = min(5.0, max(plan.duration_s / 4, 0.5))
    result = run_load(one, batches, LoadSpec(plan.duration_s, plan.concurrency, plan.qps, every), say)
    recall, sample, recall_note = measure_recall(search, vf, pool, plan, params, say)
    latency = result.percentiles()
    data: dict[str, Any] = {
        "environment": env.name,
        "collection": plan.collection,
        "duration_s": round(result.elapsed_s, 3),
        "requests": result.requests,
        "errors": result.errors,
        "qps": round(result.qps, 3),
        "latency_ms": latency,
        "k": plan.topk,
        "recall_at_k": None if recall is None else round(recall, 4),
        "recall_sample": sample,
        "recall_note": recall_note,
        "index_type": vf.index_type,
        "metric_type": vf.metric,
        "search_params": plan.search_params,
        "concurrency": plan.concurrency,
        "fixed_qps": plan.qps,
        "nq": plan.nq,
        "filter": plan.filter,
        "first_error": result.first_error,
    }
    verdicts = judge(env, data)
    data["targets"] = verdicts
    met = all(v["met"] for v in verdicts.values()) if verdicts else None
    data["met_targets"] = met
    previous = records.latest(runtime, env.name, records.LOADTEST, subject=plan.collection)
    data["previous"] = _comparison(previous, data)
    record = records.save(runtime, environment=env.name, kind=records.LOADTEST, subject=plan.collection,
                          started_at=started_at, passed=bool(met) and result.errors == 0, result=data,
                          created_by=user, trigger=trigger)
    data["run_id"] = record.id
    chart = None
    try:
        from commands.readiness.charts import loadtest_chart

        chart = loadtest_chart(result, f"{env.name}/{plan.collection}")
    except Exception:  # a chart is a nicety; the numbers are the result
        import logging

        logging.getLogger("milvus_chatops.readiness").exception("could not draw the load test chart")
    files = [Attachment(f"loadtest-{env.name}-{plan.collection}.png", chart, "Latency and QPS")] if chart else []
    return Reply(text=_summary(data), blocks=_blocks(data), data=data, files=files, response_type="in_channel")


def measure_recall(search: Any, vf: Any, pool: list[list[float]], plan: Plan, params: dict[str, Any],
                   say: Any) -> tuple[float | None, int, str | None]:
    if plan.recall_sample == 0:
        return None, 0, "not asked for (--recall-sample 0)"
    if vf.metric.upper() not in ("L2", "IP", "COSINE"):
        return None, 0, f"exact search is not implemented for metric {vf.metric}"
    rows = search.count(plan.collection)
    if rows > EXACT_MAX_ROWS:
        return None, 0, f"{rows:,} rows is more than the {EXACT_MAX_ROWS:,} scanned for exact search"
    queries = pool[: plan.recall_sample]
    say(f"Measuring recall@{plan.topk}: exact search of {len(queries)} queries over {rows:,} rows")
    exact = ExactTopK(np.asarray(queries, dtype=np.float32), plan.topk, vf.metric)
    for ids, vectors in search.scan(vf, filter=plan.filter):
        exact.add(ids, vectors)
    found = search.search_ids(plan.collection, queries, anns_field=vf.name, limit=plan.topk, search_params=params,
                              filter=plan.filter)
    return exact.recall(found), len(queries), None


def judge(env: Environment, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target the environment sets, with the measured value and whether it was met."""
    targets = env.targets
    out: dict[str, dict[str, Any]] = {}
    p99 = data["latency_ms"]["p99"]
    if targets.search_p99_ms is not None:
        out["search_p99_ms"] = {"target": targets.search_p99_ms, "measured": p99,
                                "met": p99 is not None and p99 <= targets.search_p99_ms}
    if targets.qps is not None:
        out["qps"] = {"target": targets.qps, "measured": data["qps"], "met": data["qps"] >= targets.qps}
    if targets.recall is not None:
        recall = data["recall_at_k"]
        out["recall"] = {"target": targets.recall, "measured": recall,
                         "met": recall is not None and recall >= targets.recall}
    return out


def _comparison(previous: records.RunRecord | None, data: dict[str, Any]) -> dict[str, Any] | None:
    if previous is None:
        return None
    before = previous.result
    return {
        "run_id": previous.id,
        "at": previous.finished_at.isoformat(),
        "qps": before.get("qps"),
        "p99_ms": (before.get("latency_ms") or {}).get("p99"),
        "recall_at_k": before.get("recall_at_k"),
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _summary(data: dict[str, Any]) -> str:
    lat = data["latency_ms"]
    recall = "not measured" if data["recall_at_k"] is None else f"{data['recall_at_k']:.3f}"
    return (f"Load test of {data['collection']} in {data['environment']}: {data['qps']:,.1f} QPS, "
            f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, {data['errors']:,} error(s) of {data['requests']:,}, "
            f"recall@{data['k']} {recall}.")


def _blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    lat = data["latency_ms"]
    recall = (f"{data['recall_at_k']:.3f} ({data['recall_sample']} queries vs exact)"
              if data["recall_at_k"] is not None else f"not measured: {data['recall_note']}")
    icon = {True: ":white_check_mark:", False: ":x:", None: ":bar_chart:"}[data["met_targets"]]
    blocks = [
        bk.header(f"Load test: {data['collection']} in {data['environment']}"),
        bk.section(f"{icon} {bk.escape(_summary(data))}"),
        bk.fields([
            f"*Achieved*\n{data['qps']:,.1f} searches/s ({data['requests']:,} in {data['duration_s']:,.1f} s)",
            f"*Latency*\np50 {_ms(lat['p50'])} · p95 {_ms(lat['p95'])}\np99 {_ms(lat['p99'])} · max {_ms(lat['max'])}",
            f"*Errors*\n{data['errors']:,}",
            f"*Recall@{data['k']}*\n{bk.escape(recall)}",
        ]),
    ]
    if data["first_error"]:
        blocks.append(bk.context(f"First error: {bk.escape(data['first_error'])}"))
    if data["targets"]:
        parts = [f"{'✓' if v['met'] else '✗'} {name} {v['measured']} (target {v['target']:g})"
                 for name, v in data["targets"].items()]
        blocks.append(bk.context("Targets: " + bk.escape(" · ".join(parts))))
    else:
        blocks.append(bk.context(f"No targets set: add `targets:` to `environments.{bk.escape(data['environment'])}`."))
    prev = data["previous"]
    if prev:
        when = prev["at"][:16].replace("T", " ")
        recall = prev["recall_at_k"] if prev["recall_at_k"] is not None else "n/a"
        blocks.append(bk.context(bk.escape(
            f"Last run ({when} UTC): {prev['qps'] or 0:,.1f} QPS, p99 {_ms(prev['p99_ms'])}, recall {recall}")))
    mode = f"fixed {data['fixed_qps']:g}/s" if data["fixed_qps"] else f"{data['concurrency']} concurrent"
    blocks.append(bk.context(bk.escape(
        f"{data['index_type'] or 'no index'} · {data['metric_type']} · params {json.dumps(data['search_params'])} · "
        f"{mode} · nq {data['nq']}" + (f" · filter {data['filter']}" if data["filter"] else ""))))
    return bk.fit_blocks(blocks)
