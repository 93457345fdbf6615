"""Linear fits through Prometheus range data and the forecasts built on them: when a resource
reaches its limit at the growth the window shows. Pure: no queries, no Slack text."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from bot import blocks as bk
from bot.units import format_duration
from integrations.prometheus import Range

DAY = 86400.0
# Growth fitted on less than this is noise (a burst of inserts), not a trend to plan on.
MIN_FIT_WINDOW_S = 3600.0


@dataclass
class Fit:
    """Least-squares line through (t, v) points: v = slope * t + intercept."""

    slope: float  # units per second
    intercept: float
    start: float
    end: float
    points: int

    @property
    def window_s(self) -> float:
        return self.end - self.start

    def at(self, t: float) -> float:
        return self.slope * t + self.intercept

    def reaches(self, level: float) -> float | None:
        """Unix time when the line reaches ``level`` (None if it never does going forward)."""
        if self.slope <= 0:
            return None
        return (level - self.intercept) / self.slope


def linear_fit(points: list[tuple[float, float]]) -> Fit | None:
    pts = [(t, v) for t, v in points if not (math.isnan(v) or math.isinf(v))]
    if len(pts) < 2:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in pts) / var
    return Fit(slope, mv - slope * mt, pts[0][0], pts[-1][0], n)


@dataclass
class Forecast:
    resource: str  # memory | disk | etcd
    unit: str
    current: float
    limit: float | None
    limit_label: str
    fit: Fit | None
    runs_out_at: dt.datetime | None
    reason: str = ""  # why there is no date

    def to_data(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "current": self.current,
            "limit": self.limit,
            "limit_label": self.limit_label,
            "growth_per_day": self.fit.slope * DAY if self.fit else None,
            "window_seconds": self.fit.window_s if self.fit else None,
            "runs_out_at": self.runs_out_at.isoformat() if self.runs_out_at else None,
            "reason": self.reason or None,
        }


def forecast(
    resource: str,
    unit: str,
    series: Range | None,
    current: float | None,
    limit: float | None,
    limit_label: str,
    now: dt.datetime,
) -> Forecast | None:
    if current is None:
        return None
    points = series.series[0].points if series is not None and series.ok else []
    fit = linear_fit(points)
    if fit is None:
        reason = bk.escape(series.reason) if series is not None and not series.ok else "too few points to fit a line"
        return Forecast(resource, unit, current, limit, limit_label, None, None, reason)
    if fit.window_s < MIN_FIT_WINDOW_S:
        return Forecast(
            resource,
            unit,
            current,
            limit,
            limit_label,
            None,
            None,
            f"only {format_duration(fit.window_s)} of data; "
            f"a forecast needs at least {format_duration(MIN_FIT_WINDOW_S)}",
        )
    if limit is None:
        return Forecast(resource, unit, current, None, limit_label, fit, None, f"no {resource} limit known")
    if current >= limit:
        return Forecast(resource, unit, current, limit, limit_label, fit, now, "")
    when = fit.reaches(limit)
    if when is None:
        return Forecast(resource, unit, current, limit, limit_label, fit, None, "not growing")
    if when - now.timestamp() > 10 * 365 * DAY:
        return Forecast(resource, unit, current, limit, limit_label, fit, None, "not within 10 years at this rate")
    return Forecast(
        resource,
        unit,
        current,
        limit,
        limit_label,
        fit,
        dt.datetime.fromtimestamp(max(when, now.timestamp()), dt.UTC),
        "",
    )
