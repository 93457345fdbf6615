"""The reply to a plan: figures, pods, growth phases, cost, the arithmetic, the values file and the
buttons (change the inputs, deploy it where that can work)."""

from __future__ import annotations

from typing import Any

from bot import blocks as bk
from bot.config import Environment
from bot.context import Context
from bot.reply import Attachment, Reply
from commands.plan.inputs import build_input, plan_id_for
from commands.plan.sizing import IndexType, Plan, PlanInput, plan
from commands.plan.values import chart_version_for, render_values

DEPLOY_ACTION = "plan_deploy"
PREFILL_ACTION = "plan_prefill"
PLANS_KV = "plans"
MATH_SECTION_CHARS = 2900  # under Slack's 3,000 per section, with room for the heading


def environment(ctx: Context, name: str | None) -> Environment | None:
    return ctx.runtime.environment(name) if name else None


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
    env = environment(ctx, raw.get("env"))
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
        if target:  # offer the command only where it can work
            footer.append(f"Deploy it with `/milvus deploy {target} --plan {plan_id}`.")
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
