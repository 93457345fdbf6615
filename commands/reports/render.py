"""A report as the user sees it: the verdict first, one coloured line per check, the forecasts, the
recommendation with its button to the planner, and the data of ``run --json``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import blocks as bk
from bot.reply import Attachment, Message
from bot.units import format_duration
from commands.reports.checks import Line, Recommendation, Status, fmt_unit, worst
from commands.reports.forecast import DAY, Forecast
from integrations.prometheus import Range

Kind = Literal["health", "capacity"]


EMOJI = {
    Status.green: ":large_green_circle:",
    Status.yellow: ":large_yellow_circle:",
    Status.red: ":red_circle:",
    Status.unknown: ":white_circle:",
}


@dataclass
class Report:
    kind: Kind
    env: str
    prometheus_url: str
    generated_at: dt.datetime
    lines: list[Line]
    queries: int = 0
    elapsed_s: float = 0.0
    window_s: float | None = None
    forecasts: list[Forecast] = field(default_factory=list)
    recommendation: Recommendation | None = None
    charts: list[Attachment] = field(default_factory=list)
    series: dict[str, Range] = field(default_factory=dict)

    @property
    def verdict(self) -> Status:
        return worst(line.status for line in self.lines)

    def line(self, key: str) -> Line:
        return next(line for line in self.lines if line.key == key)

    def verdict_text(self) -> str:
        counts = {s: sum(1 for line in self.lines if line.status is s) for s in Status}
        missing = f", {counts[Status.unknown]} not available" if counts[Status.unknown] else ""
        verdict = self.verdict
        if verdict is Status.red:
            head = f"Unhealthy: {counts[Status.red]} red, {counts[Status.yellow]} yellow"
        elif verdict is Status.yellow:
            head = f"Needs attention: {counts[Status.yellow]} yellow"
        elif verdict is Status.green:
            head = "All measured checks are green"
        else:
            return "Nothing could be measured"
        unknown, total = counts[Status.unknown], len(self.lines)
        if unknown * 2 > total:
            # A green verdict on a small part of the checks must not read like a clean bill of health.
            missing = f" (only {total - unknown} of {total} checks could be measured)"
        return head + missing

    def title(self) -> str:
        return f"{self.kind.capitalize()} report for {self.env}"

    def text(self) -> str:
        return f"{EMOJI[self.verdict]} {self.title()}: {self.verdict_text()}"

    def blocks(self) -> list[dict[str, Any]]:
        out = [
            bk.header(self.title()),
            bk.section(f"{EMOJI[self.verdict]} *{self.verdict_text()}*"),
        ]
        rows = []
        for line in self.lines:
            row = f"{EMOJI[line.status]} *{line.label}*: {line.text}"
            if line.details:
                row += "\n" + "\n".join(f"    {d}" for d in line.details[:8])
                if len(line.details) > 8:
                    row += f"\n    …and {len(line.details) - 8} more"
            rows.append(row)
        chunk: list[str] = []
        for row in rows:
            if sum(len(r) + 1 for r in chunk) + len(row) > bk.MAX_SECTION_TEXT - 100:
                out.append(bk.section("\n".join(chunk)))
                chunk = []
            chunk.append(row)
        if chunk:
            out.append(bk.section("\n".join(chunk)))
        if self.forecasts:
            out.append(bk.divider())
            out.append(bk.section("*Forecast*\n" + "\n".join(forecast_text(f) for f in self.forecasts)))
        if self.recommendation:
            rec = self.recommendation
            out.append(bk.section(f"*Recommendation*\n{rec.text}"))
            out.append(bk.actions(bk.button("Open /milvus plan", "plan_prefill", {"env": self.env, **rec.plan_args})))
        when = self.generated_at.strftime("%Y-%m-%d %H:%M UTC")
        out.append(
            bk.context(
                f"{when} · {self.queries} Prometheus queries in {self.elapsed_s:.2f} s"
                f" · {bk.escape(self.prometheus_url)}"
            )
        )
        return out

    def message(self) -> Message:
        return Message(self.text(), self.blocks())

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "environment": self.env,
            "generated_at": self.generated_at.isoformat(),
            "verdict": self.verdict.value,
            "summary": self.verdict_text(),
            "checks": [line.to_data() for line in self.lines],
            "forecasts": [f.to_data() for f in self.forecasts],
            "recommendation": self.recommendation.to_data() if self.recommendation else None,
            "window_seconds": self.window_s,
            "queries": self.queries,
            "elapsed_seconds": round(self.elapsed_s, 3),
            "charts": [a.filename for a in self.charts],
        }


def forecast_text(f: Forecast) -> str:
    name = {"memory": "Query node memory", "disk": "Local disk", "etcd": "etcd database"}.get(f.resource, f.resource)
    if f.fit is None:
        return f"• {name}: no forecast ({f.reason})"
    growth = f.fit.slope * DAY
    fitted = f"fitted on {format_duration(f.fit.window_s)} of data"
    sign = "+" if growth >= 0 else ""
    head = f"• {name}: {fmt_unit(f.current, f.unit)}, {sign}{fmt_unit(growth, f.unit)}/day ({fitted})"
    if f.runs_out_at:
        return f"{head}; reaches {f.limit_label} around *{f.runs_out_at:%Y-%m-%d}*"
    return f"{head}; {f.reason}"
