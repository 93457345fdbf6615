"""/milvus health [env]: is Milvus healthy right now? Verdict first, then one line per check."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bot.args import positional
from bot.context import Context
from bot.registry import command
from bot.reply import Reply
from commands.reports.commands import report_on_demand


class HealthArgs(BaseModel):
    env: str | None = positional(None, description="environment (may be omitted when only one is configured)")
    no_chart: bool = Field(False, description="skip the 24 h latency chart")


@command(
    "health",
    summary="Health from Prometheus: components, QPS, p99 latency, errors, throttling, lag, restarts",
    args=HealthArgs,
    targets_env=True,
    examples=("/milvus health prod", "/milvus health prod --no-chart"),
)
def health_command(ctx: Context, args: HealthArgs) -> Reply:
    env = ctx.require_env()
    ctx.services.prometheus(env)  # none configured: say so now, not after "querying Prometheus"
    ctx.progress(f"querying Prometheus for {env.name}")
    return report_on_demand(ctx, "health", charts=not args.no_chart)
