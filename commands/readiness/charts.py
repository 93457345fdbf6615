"""The load test's chart: latency (p50, p99) and answered searches per second over the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from commands.reports.charts import _figure, _lock, _png

if TYPE_CHECKING:
    from commands.readiness.loadgen import LoadResult


def loadtest_chart(result: LoadResult, title: str) -> bytes | None:
    timeline = result.timeline()
    if not timeline:
        return None
    seconds = [t for t, _, _, _ in timeline]
    with _lock:
        fig, ax = _figure()
        ax.plot(seconds, [p50 if p50 is not None else float("nan") for _, _, p50, _ in timeline], label="p50 ms")
        ax.plot(seconds, [p99 if p99 is not None else float("nan") for _, _, _, p99 in timeline], label="p99 ms")
        ax.set_xlabel("seconds into the run")
        ax.set_ylabel("latency (ms)")
        rate = ax.twinx()
        rate.bar(seconds, [n for _, n, _, _ in timeline], alpha=0.2, color="gray", label="searches/s")
        rate.set_ylabel("searches per second")
        ax.set_zorder(rate.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_title(f"Load test {title}")
        lines, labels = ax.get_legend_handles_labels()
        bars, bar_labels = rate.get_legend_handles_labels()
        ax.legend(lines + bars, labels + bar_labels, loc="upper left")
        return _png(fig)
