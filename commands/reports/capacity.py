"""/milvus capacity [env]: how full is Milvus, how fast is it filling, and what to add before when."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bot.args import positional
from bot.context import Context
from bot.registry import command
from bot.reply import Reply
from commands.reports.build import parse_window
from commands.reports.commands import report_on_demand


class CapacityArgs(BaseModel):
    env: str | None = positional(None, description="environment (may be omitted when only one is configured)")
    window: str = Field("7d", description="span the growth is fitted on: 7d, 30d, 12h")
    no_chart: bool = Field(False, description="skip the memory and rows charts")


@command(
    "capacity",
    summary="Capacity from Prometheus: rows and growth, storage, memory vs limits, disk, etcd, forecasts",
    args=CapacityArgs,
    targets_env=True,
    examples=("/milvus capacity prod", "/milvus capacity prod --window 30d"),
)
def capacity_command(ctx: Context, args: CapacityArgs) -> Reply:
    window = parse_window(args.window)
    env = ctx.require_env()
    ctx.services.prometheus(env)  # none configured: say so now, not after "querying Prometheus"
    ctx.progress(f"querying Prometheus for {env.name} over {args.window}")
    return report_on_demand(ctx, "capacity", window=window, charts=not args.no_chart)
