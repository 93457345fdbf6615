"""/milvus plan: capacity planning (bot/sizing.py), the Helm values for it, and a way to deploy it.

``/milvus plan --vectors 100M --dim 768 --index hnsw --m 16`` replies with the figures, the pods, the
growth phases, the cost and the arithmetic behind each figure, attaches the values file and stores
the plan's input under a short id (kv ``plans``) that ``/milvus deploy <env> --plan <id>`` reads.
``/milvus plan`` alone opens a form with the same fields (callback ``plan_modal``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context
from bot.errors import UsageError
from bot.registry import action, command
from bot.reply import Attachment, Reply
from commands.plan.sizing import IndexType, MessageQueue, Plan, PlanInput, PlanInputError, parse_plan_input, plan
from commands.plan.values import chart_version_for, render_values

MODAL_CALLBACK = "plan_modal"
DEPLOY_ACTION = "plan_deploy"
PREFILL_ACTION = "plan_prefill"
PLANS_KV = "plans"
MATH_SECTION_CHARS = 2900  # under Slack's 3,000 per section, with room for the heading

# Argument name -> PlanInput field, where they differ (``--growth 5M/month``).
_RENAMED = {"growth": "growth_per_month"}
# Fields whose values are passed through as typed by the user; PlanInput reads suffixes itself.
_PLAN_FIELDS = (
    "vectors", "dim", "index", "m", "pq_m", "nbits", "nlist", "refine", "max_degree", "with_raw_data",
    "scalar_bytes", "scalars_mmap", "replicas", "segment_size_mb", "milvus_version", "mq", "growth", "months",
    "target_qps", "backup_retention_copies",
)  # fmt: skip


class PlanArgs(BaseModel):
    # Strings, not ints: PlanInput validates them and says what is wrong in one sentence per field.
    env: str | None = positional(None, description="environment to plan for (prices, backups, deploy button)")
    vectors: str | None = Field(None, description="number of vectors, e.g. 100M")
    dim: str | None = Field(None, description="vector dimension (bits for binary indexes)")
    index: str | None = Field(
        None,
        description="FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, IVF_RABITQ, HNSW, DISKANN, SCANN, BIN_FLAT, BIN_IVF_FLAT"
        " (default HNSW)",
    )
    m: str | None = Field(None, description="HNSW M (default 30)")
    pq_m: str | None = Field(None, description="IVF_PQ m, a divisor of dim (default dim/2)")
    nbits: str | None = Field(None, description="IVF_PQ bits per code (default 8)")
    nlist: str | None = Field(None, description="IVF nlist (default 128)")
    refine: str | None = Field(None, description="IVF_RABITQ refine: none, sq6, sq8, fp16, bf16, sq32")
    max_degree: str | None = Field(None, description="DISKANN max_degree (default 56)")
    with_raw_data: bool | None = Field(None, description="SCANN keeps raw vectors (--no-with-raw-data: not)")
    scalar_bytes: str | None = Field(None, description="average bytes of scalar fields per row")
    scalars_mmap: bool | None = Field(None, description="scalar fields memory-mapped from local disk")
    replicas: str | None = Field(None, description="in-memory replicas (default 1)")
    segment_size_mb: str | None = Field(None, description="segment size: 512, 1024 or 2048 MB (default 1024)")
    milvus_version: str | None = Field(None, description="2.5 or 2.6 (default: the environment's, else 2.6)")
    mq: str | None = Field(None, description="message queue: pulsar, kafka, woodpecker")
    growth: str | None = Field(None, description="new vectors per month, e.g. 5M/month")
    months: str | None = Field(None, description="planning horizon in months (0..120)")
    target_qps: str | None = Field(None, description="target search QPS (recorded, not modelled)")
    backup_retention_copies: str | None = Field(
        None, description="backups kept in object storage (default: from the environment's retention)"
    )


# -- from arguments to a plan --------------------------------------------------------------------


def _given(raw: dict[str, Any]) -> dict[str, Any]:
    """Only what the user filled in; blank form fields are not given."""
    return {k: v for k, v in raw.items() if v is not None and not (isinstance(v, str) and not v.strip())}


def plan_id_for(inp: PlanInput) -> str:
    """``p-`` + 8 hex of the canonical input: the same plan twice gets the same id."""
    canonical = json.dumps(inp.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "p-" + hashlib.sha256(canonical.encode()).hexdigest()[:8]


def retention_copies(env: Environment) -> tuple[int, str] | None:
    """How many backups the environment's retention keeps, and how that was worked out.

    bot/backups.py keeps a backup while it is among the newest ``keep_last`` OR younger than
    ``days``, so the count is the larger of the two; ``days`` turns into a count through the schedule.
    """
    backup = env.backup
    if backup is None:
        return None
    keep_last, days = backup.retention.keep_last, backup.retention.days
    by_days = 0
    why = []
    if days and backup.schedule:
        by_days = _runs_in_days(backup.schedule, days)
        why.append(f"{by_days} runs of `{backup.schedule}` in {days} days")
    elif days:
        why.append(f"{days} days with no schedule, counted as one backup a day")
        by_days = days
    if keep_last:
        why.append(f"keep_last {keep_last}")
    copies = max(keep_last or 0, by_days)
    if not copies:
        return None
    return copies, f"{copies} from the retention of `{env.name}` (" + "; ".join(why) + ")"


def _runs_in_days(cron: str, days: int) -> int:
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError:
        return days
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # any fixed Monday: counts are the same every week
    end = start + dt.timedelta(days=days)
    count, previous, now = 0, None, start
    while count < 1000:  # PlanInput accepts up to 1,000 backups
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire >= end:
            break
        count += 1
        previous, now = fire, fire + dt.timedelta(seconds=1)
    return count


def _environment(ctx: Context, name: str | None) -> Environment | None:
    return ctx.runtime.environment(name) if name else None


def build_input(ctx: Context, raw: dict[str, Any], env: Environment | None) -> tuple[PlanInput, list[str]]:
    """Turn the user's fields into a ``PlanInput``; also return where defaults came from."""
    given = _given(raw)
    fields: dict[str, Any] = {}
    for name in _PLAN_FIELDS:
        if name in given:
            fields[_RENAMED.get(name, name)] = given[name]
    sources: list[str] = []
    if env is not None and "milvus_version" not in fields and env.helm is not None:
        line = ".".join(env.helm.milvus_version.lstrip("vV").split(".")[:2])
        if line in ("2.5", "2.6"):
            fields["milvus_version"] = line
            sources.append(f"Milvus {line} from `{env.name}`'s Helm settings ({env.helm.milvus_version})")
    if env is not None and "backup_retention_copies" not in fields:
        kept = retention_copies(env)
        if kept:
            fields["backup_retention_copies"] = kept[0]
            sources.append(f"backups kept: {kept[1]}")
    if ctx.config.prices is not None:
        fields["prices"] = ctx.config.prices.model_dump()
        sources.append(f"prices from the config ({ctx.config.prices.currency})")
    return parse_plan_input(fields), sources


def deploy_target(ctx: Context, env: Environment | None, inp: PlanInput) -> tuple[str | None, str]:
    """The environment the deploy button offers, or why there is none."""
    envs = ctx.config.environments
    if env is not None:
        if env.helm is None:
            return None, f"`{env.name}` has no `helm:` section, so this bot does not deploy it."
        target = env
    else:
        deployable = [e for e in envs.values() if e.helm is not None]
        if not deployable:
            return None, "No environment is deployed with Helm by this bot; add a `helm:` section to one to deploy."
        found = deployable[0] if len(envs) == 1 else next((e for e in deployable if not e.production), None)
        if found is None:
            return None, "Name the environment to deploy to: `/milvus plan <env> ...`."
        target = found
    assert target.helm is not None
    line = ".".join(target.helm.milvus_version.lstrip("vV").split(".")[:2])
    if line != inp.milvus_version:
        # deploy refuses a plan for another Milvus line; say so here rather than behind the button.
        return None, (
            f"`{target.name}` runs Milvus {target.helm.milvus_version}, this plan is for {inp.milvus_version}:"
            f" plan with `/milvus plan {target.name} ...` to deploy there."
        )
    return target.name, ""


# -- the reply ----------------------------------------------------------------------------------


def _g(value: float) -> str:
    return f"{value:,.1f} GiB"


def _shape(cpu: float, mem: float) -> str:
    return f"{cpu:g}c/{mem:g}G"


def _describe(inp: PlanInput) -> str:
    params = {
        IndexType.HNSW: f" M={inp.m}",
        IndexType.IVF_PQ: f" m={inp.pq_m} nbits={inp.nbits} nlist={inp.nlist}",
        IndexType.IVF_FLAT: f" nlist={inp.nlist}",
        IndexType.IVF_SQ8: f" nlist={inp.nlist}",
        IndexType.BIN_IVF_FLAT: f" nlist={inp.nlist}",
        IndexType.IVF_RABITQ: f" nlist={inp.nlist} refine={inp.refine.value}",
        IndexType.DISKANN: f" max_degree={inp.max_degree}",
        IndexType.SCANN: "" if inp.with_raw_data else " without raw data",
    }.get(inp.index, "")
    replicas = f", {inp.replicas} replicas" if inp.replicas > 1 else ""
    return f"{inp.vectors:,} x {inp.dim}d {inp.index.value}{params}{replicas}, Milvus {inp.milvus_version}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    return "```" + "\n".join(lines) + "```"


def _pods_table(p: Plan, deps: bool) -> str:
    rows: list[tuple[str, ...]] = []
    for r in p.dependencies if deps else p.components:
        limits = r.limits
        limit = f"{limits['cpu']}/{limits['memory']}" if limits else "none"
        row: tuple[str, ...] = (r.name, str(r.replicas), f"{r.requests['cpu']}/{r.requests['memory']}", limit)
        if deps:
            volume = (
                ", ".join(f"{n} {s:g}Gi" for n, s in r.volumes)
                if r.volumes
                else (f"{r.volume_gib:g}Gi" if r.volume_gib else "-")
            )
            row = (*row, volume)
        rows.append(row)
    header = ("pod", "replicas", "request cpu/mem", "limit cpu/mem") + (("volume per pod",) if deps else ())
    return _table(header, rows)


def _phases_text(p: Plan) -> str:
    cost = p.monthly_cost is not None
    rows: list[tuple[str, ...]] = []
    for ph in p.phases:
        qn = ph.query_nodes
        row: tuple[str, ...] = (
            str(ph.month), f"{ph.vectors:,}", ph.mode, _g(ph.loading_memory_gib),
            f"{qn.count} x {_shape(qn.cpu, qn.memory_gib)}", "yes" if ph.fits_today else "no",
        )  # fmt: skip
        if cost and ph.monthly_cost:
            row = (*row, f"{ph.monthly_cost.total:,.0f}")
        rows.append(row)
    header: tuple[str, ...] = ("month", "vectors", "mode", "loading memory", "query nodes", "fits today's")
    if cost:
        header = (*header, f"{p.monthly_cost.currency if p.monthly_cost else ''}/month")
    text = _table(header, rows)
    inp = p.input
    if p.stops_fitting_month is not None:
        text = f":warning: Today's deployment stops fitting in *month {p.stops_fitting_month}*.\n" + text
    elif inp.months and inp.growth_per_month:
        text = f"Today's deployment still fits after {inp.months} months.\n" + text
    return text


def _math_sections(p: Plan) -> list[str]:
    lines = [f"• *{bk.escape(figure)}*: {bk.escape(formula)}" for figure, formula in p.math]
    sections: list[str] = []
    current = "*Show the math*"
    for line in lines:
        if len(current) + len(line) + 1 > MATH_SECTION_CHARS:
            sections.append(current)
            current = "*Show the math (continued)*"
        current += "\n" + line
    sections.append(current)
    return sections


def _prefill_value(inp: PlanInput, env: str | None) -> dict[str, Any]:
    dumped = inp.model_dump(mode="json", exclude_defaults=True, exclude={"prices"})
    if env:
        dumped["env"] = env
    return dumped


def plan_reply(ctx: Context, raw: dict[str, Any]) -> Reply:
    """The whole of ``/milvus plan``: figures, pods, phases, cost, math, values file, buttons."""
    env = _environment(ctx, raw.get("env"))
    inp, sources = build_input(ctx, raw, env)
    p = plan(inp)
    plan_id = plan_id_for(inp)
    ctx.store.kv_put(PLANS_KV, plan_id, inp.model_dump(mode="json"))

    qn = p.query_nodes
    beyond = p.mode == "beyond"
    figures = [
        f"*Raw data*\n{_g(p.raw_data_gib)}",
        f"*Index memory*\n{_g(p.index_memory_gib)}",
        f"*Loading memory*\n{_g(p.loading_memory_gib)}"
        + (f" ({_g(p.loading_memory_per_replica_gib)} per replica)" if inp.replicas > 1 else ""),
        f"*Query nodes*\n{qn.count} x {_shape(qn.cpu, qn.memory_gib)}",
        f"*Local disk*\n{_g(p.local_disk_gib)}"
        + (f" ({qn.local_disk_gib:,.0f} GiB per query node)" if qn.local_disk_gib else ""),
        f"*Object storage*\n{_g(p.object_storage_gib)}"
        + (f" (incl. {inp.backup_retention_copies} backups)" if inp.backup_retention_copies else ""),
        f"*Milvus pods*\n{p.milvus_cpu:g} cores, {p.milvus_memory_gib:g} GiB",
        f"*Dependencies*\n{p.dependencies_cpu:g} cores, {p.dependencies_memory_gib:g} GiB, volumes"
        f" {p.volumes_gib:,.0f} GiB",
    ]
    if p.monthly_cost:
        c = p.monthly_cost
        figures.append(
            f"*Monthly cost*\n{c.total:,.2f} {bk.escape(c.currency)} (cpu {c.cpu:,.0f}, memory {c.memory:,.0f},"
            f" disk {c.disk:,.0f}, object {c.object_storage:,.0f})"
        )
    mode = {"standalone": "Standalone", "cluster": "Cluster", "beyond": "Beyond one cluster"}[p.mode]
    blocks: list[dict[str, Any]] = [
        bk.header(f"Plan {plan_id}: {_describe(inp)}"),
        bk.section(
            f"*{mode}*, scale *{p.scale}*, message queue *{p.message_queue}*"
            + ("" if beyond else f", chart milvus-{chart_version_for(inp.milvus_version)}")
        ),
        bk.fields(figures),
    ]
    if p.risks:
        blocks.append(bk.section("*Risks*\n" + "\n".join(f":warning: {bk.escape(r)}" for r in p.risks)))
    blocks.append(bk.section(f"*Milvus components*\n{_pods_table(p, deps=False)}"))
    if p.dependencies:
        blocks.append(bk.section(f"*Dependencies*\n{_pods_table(p, deps=True)}"))
    if inp.months:
        blocks.append(bk.section(f"*Growth* ({inp.growth_per_month:,}/month)\n{_phases_text(p)}"))
    if p.notes:
        blocks.append(bk.context(*(bk.escape(n) for n in p.notes[:10])))
    blocks.append(bk.divider())
    blocks.extend(bk.section(s) for s in _math_sections(p))

    files: list[Attachment] = []
    buttons: list[dict[str, Any]] = [bk.button("Change inputs", PREFILL_ACTION, _prefill_value(inp, raw.get("env")))]
    footer = []
    if beyond:
        footer.append(
            "No Helm values: a plan beyond one cluster has nothing to deploy. Split the data and plan each part."
        )
    else:
        # Imported here: commands.security builds on commands.plan's values, not the other way round.
        from commands.security.values import security_layer

        filename = f"milvus-values-{plan_id}.yaml"
        files.append(
            Attachment(filename, render_values(p, base=security_layer(env) if env else None).encode(),
                       title=f"Helm values for plan {plan_id} ({_describe(inp)})")
        )
        footer.append(f"Helm values attached as `{filename}` (chart {chart_version_for(inp.milvus_version)}).")
        target, why_not = deploy_target(ctx, env, inp)
        if target:
            buttons.insert(
                0,
                bk.button(
                    f"Deploy this plan to {target}",
                    DEPLOY_ACTION,
                    {"env": target, "plan": plan_id},
                    style="primary",
                    confirm=(
                        f"Deploy plan {plan_id}?",
                        f"Runs `/milvus deploy {target} --plan {plan_id}`: diff, risks, and approval where"
                        f" `{target}` requires it.",
                    ),
                ),
            )
        else:
            footer.append(why_not)
        footer.append(f"Deploy it with `/milvus deploy <env> --plan {plan_id}`.")
    blocks.append(bk.actions(*buttons))
    if sources:
        footer.append("Inputs: " + "; ".join(sources) + ".")
    blocks.append(bk.context(*footer))

    text = (
        f"Plan {plan_id}: {_describe(inp)}: {p.mode}, loading memory {p.loading_memory_gib:,.1f} GiB,"
        f" {qn.count} query node(s) of {_shape(qn.cpu, qn.memory_gib)}"
        + (f", {p.monthly_cost.total:,.2f} {p.monthly_cost.currency}/month" if p.monthly_cost else "")
    )
    data = {**p.to_data(), "plan_id": plan_id}
    if files:
        data["values_file"] = files[0].filename
    return Reply(text=text, blocks=blocks, data=data, files=files)


# -- the form -----------------------------------------------------------------------------------


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def _text_input(
    name: str, label: str, hint: str, initial: Any = None, *, optional: bool = True, placeholder: str = ""
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": name}
    if initial not in (None, ""):
        element["initial_value"] = str(initial)
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    return {
        "type": "input",
        "block_id": name,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "hint": {"type": "plain_text", "text": hint},
        "element": element,
    }


def _select(name: str, label: str, options: list[tuple[str, str]], initial: str | None) -> dict[str, Any]:
    opts = [_option(text, value) for text, value in options]
    element: dict[str, Any] = {"type": "static_select", "action_id": name, "options": opts}
    chosen = next((o for o in opts if o["value"] == initial), None)
    if chosen:
        element["initial_option"] = chosen
    return {
        "type": "input",
        "block_id": name,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


def plan_modal(prefill: dict[str, Any], env: str | None = None) -> dict[str, Any]:
    """The form behind ``/milvus plan``; ``prefill`` holds PlanInput field names and values."""
    v = {k: val for k, val in prefill.items() if val is not None}
    index_params = " ".join(
        f"{k}={str(v[k]).lower() if isinstance(v[k], bool) else v[k]}"
        for k in ("m", "pq_m", "nbits", "nlist", "refine", "max_degree", "with_raw_data")
        if k in v
    )
    growth = v.get("growth_per_month", v.get("growth"))
    blocks = [
        _text_input(
            "vectors",
            "Vectors",
            "How many vectors today, e.g. 100M or 1.5B.",
            v.get("vectors"),
            optional=False,
            placeholder="100M",
        ),
        _text_input(
            "dim", "Dimension", "2..32768; bits for binary indexes.", v.get("dim"), optional=False, placeholder="768"
        ),
        _select("index", "Index type", [(i.value, i.value) for i in IndexType], str(v.get("index") or "HNSW")),
        _text_input(
            "index_params",
            "Index parameters",
            "e.g. m=16 (HNSW), nlist=1024, pq_m=96 nbits=8 (IVF_PQ), refine=sq8 (IVF_RABITQ),"
            " max_degree=56 (DISKANN), with_raw_data=false (SCANN).",
            index_params,
            placeholder="m=16",
        ),
        _text_input("replicas", "Replicas", "In-memory replicas (replica_number).", v.get("replicas"), placeholder="1"),
        _text_input("growth", "Growth per month", "New vectors per month, e.g. 5M.", growth, placeholder="0"),
        _text_input("months", "Horizon (months)", "0..120", v.get("months"), placeholder="12"),
        _select("milvus_version", "Milvus version", [("2.6", "2.6"), ("2.5", "2.5")], v.get("milvus_version")),
        _select("mq", "Message queue", [(m.value, m.value) for m in MessageQueue], v.get("mq")),
        _select(
            "segment_size_mb",
            "Segment size",
            [("512 MB", "512"), ("1024 MB", "1024"), ("2048 MB", "2048")],
            str(v.get("segment_size_mb") or "1024"),
        ),
        _text_input(
            "scalar_bytes",
            "Scalar bytes per row",
            "Average bytes of the scalar fields of one row.",
            v.get("scalar_bytes"),
            placeholder="0",
        ),
    ]
    metadata = {"env": env} if env else {}
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": {"type": "plain_text", "text": "Milvus capacity plan"},
        "submit": {"type": "plain_text", "text": "Plan"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata),
        "blocks": blocks,
    }


_INDEX_PARAMS = {"m", "pq_m", "nbits", "nlist", "refine", "max_degree", "with_raw_data"}


def _index_params(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in text.replace(",", " ").split():
        key, eq, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not eq or key not in _INDEX_PARAMS:
            raise PlanInputError(
                [f"index parameter '{item}' is not one of {', '.join(sorted(_INDEX_PARAMS))} as key=value"]
            )
        out[key] = value.strip().lower() not in ("false", "0", "no") if key == "with_raw_data" else value.strip()
    return out


def _modal_fields(payload: dict[str, Any]) -> dict[str, Any]:
    raw = {k: payload.get(k) for k in ("vectors", "dim", "index", "replicas", "growth", "months", "milvus_version",
                                        "mq", "segment_size_mb", "scalar_bytes")}  # fmt: skip
    params = payload.get("index_params")
    if isinstance(params, str) and params.strip():
        raw.update(_index_params(params))
    env = payload.get("env")
    raw["env"] = env if isinstance(env, str) and env else None
    return raw


def command_for(fields: dict[str, Any], env: str | None = None) -> str:
    """The ``/milvus plan`` text for PlanInput fields, for places where no form can open."""
    names = {v: k for k, v in _RENAMED.items()}
    parts = ["/milvus plan"] + ([env] if env else [])
    for key, value in fields.items():
        option = "--" + names.get(key, key).replace("_", "-")
        if key not in _PLAN_FIELDS and key not in names:
            continue
        if value is True:
            parts.append(option)
        elif value is False:
            parts.append("--no-" + option[2:])
        else:
            parts.append(f"{option} {value}")
    return " ".join(parts)


# -- handlers -----------------------------------------------------------------------------------


@command(
    "plan",
    summary="Capacity plan: memory, disk, pods, growth, cost, the math, Helm values and a deploy button",
    args=PlanArgs,
    role=Role.viewer,
    examples=(
        "/milvus plan --vectors 100M --dim 768 --index hnsw --m 16 --replicas 2 --growth 5M/month --months 12",
        "/milvus plan staging --vectors 20M --dim 1536 --index diskann",
        "/milvus plan",
    ),
)
def plan_command(ctx: Context, args: PlanArgs) -> Reply:
    raw = args.model_dump()
    if not _given({k: v for k, v in raw.items() if k != "env"}):
        env = _environment(ctx, args.env)
        hint = "type `/milvus plan --vectors 100M --dim 768 --index hnsw --m 16` (see `/milvus help plan`)"
        # In Slack the form opens and no message is needed; elsewhere say how to plan by text.
        text = "" if ctx.trigger_id else f"The plan form opens in Slack; here, {hint}."
        return Reply(text=text, modal=plan_modal({}, env.name if env else None))
    return plan_reply(ctx, raw)


@action(MODAL_CALLBACK, role=Role.viewer, kind="modal")
def on_submit(ctx: Context, payload: dict[str, Any]) -> Reply:
    return plan_reply(ctx, _modal_fields(payload))


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
