"""PNG charts for the reports: memory and rows with their forecast line, latency over 24 h.

matplotlib is imported on first use (it costs about half a second) and always with the Agg backend:
the bot has no display and renders from worker threads.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from typing import Any

from commands.reports.forecast import Forecast, linear_fit
from integrations.prometheus import Range

_lock = threading.Lock()  # pyplot's state machine is not thread-safe; the OO API plus a lock is enough


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _times(points: list[tuple[float, float]]) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t, dt.UTC) for t, _ in points]


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def latency_chart(ranges: dict[str, Range], env: str, now: dt.datetime) -> bytes | None:
    """p99 search / query / insert latency over the range; None when there is nothing to draw."""
    drawn = {k: r for k, r in ranges.items() if r.ok}
    if not drawn:
        return None
    with _lock:
        fig, ax = _figure()
        for name, rng in drawn.items():
            for series in rng.series:
                pts = [(t, v) for t, v in series.points if v == v]  # drop NaN (idle windows)
                if pts:
                    ax.plot(_times(pts), [v for _, v in pts], label=name)
        ax.set_title(f"p99 latency in {env} (ms), last 24 h")
        ax.set_ylabel("ms")
        ax.legend(loc="upper left")
        _date_axis(ax)
        return _png(fig)


def _with_forecast(
    ax: Any, points: list[tuple[float, float]], forecast: Forecast | None, scale: float, label: str
) -> None:
    ax.plot(_times(points), [v / scale for _, v in points], label=label)
    if forecast is None or forecast.fit is None:
        return
    fit = forecast.fit
    start = points[-1][0]
    end_ts = forecast.runs_out_at.timestamp() if forecast.runs_out_at else start + (fit.end - fit.start)
    end_ts = max(end_ts, start + 1)
    xs = [start, end_ts]
    ax.plot(
        _times([(x, 0) for x in xs]),
        [fit.at(x) / scale for x in xs],
        linestyle="--",
        label=f"forecast (fit on {len(points)} points)",
    )
    if forecast.limit is not None:
        ax.axhline(forecast.limit / scale, color="red", linestyle=":", label=forecast.limit_label)


def memory_chart(ranges: dict[str, Range], forecasts: list[Forecast], env: str, now: dt.datetime) -> bytes | None:
    rng = ranges.get("qn_memory")
    if rng is None or not rng.ok:
        rng = ranges.get("process_memory")
    if rng is None or not rng.ok:
        return None
    points = rng.series[0].points
    forecast = next((f for f in forecasts if f.resource == "memory"), None)
    with _lock:
        fig, ax = _figure()
        _with_forecast(ax, points, forecast, 1024**3, "memory used")
        ax.set_title(f"Query node memory in {env} (GiB)")
        ax.set_ylabel("GiB")
        ax.legend(loc="upper left")
        _date_axis(ax)
        return _png(fig)


def rows_chart(ranges: dict[str, Range], env: str, now: dt.datetime) -> bytes | None:
    rng = ranges.get("rows")
    if rng is None or not rng.ok:
        return None
    points = rng.series[0].points
    fit = linear_fit(points)
    with _lock:
        fig, ax = _figure()
        ax.plot(_times(points), [v for _, v in points], label="rows (all collections)")
        if fit is not None and len(points) >= 2:
            # Extend the fitted line as far ahead as the window looks back.
            xs = [points[-1][0], points[-1][0] + fit.window_s]
            ax.plot(_times([(x, 0) for x in xs]), [fit.at(x) for x in xs], linestyle="--", label="forecast")
        ax.set_title(f"Rows in {env}")
        ax.legend(loc="upper left")
        _date_axis(ax)
        return _png(fig)


def warm_up() -> None:
    """Import matplotlib and draw once, so the first report after start-up is not the slow one.

    The import costs 0.5 s on an idle machine and several seconds on a busy one; ``serve`` can call
    this in a background thread at start-up.
    """
    with _lock:
        fig, ax = _figure()
        ax.plot([0, 1], [0, 1])
        _png(fig)
