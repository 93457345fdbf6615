"""Charts: PNGs of the size Slack previews well, drawn only from data that exists."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image

from commands.reports import charts
from commands.reports.forecast import DAY, Forecast, linear_fit
from integrations.prometheus import Range, Series

NOW = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
GIB = 1024**3


def _growing(days: int = 7, per_day: float = GIB, start: float = 10 * GIB) -> Range:
    t0 = NOW.timestamp() - days * DAY
    points = [(t0 + h * 3600, start + per_day * h / 24) for h in range(days * 24 + 1)]
    return Range("q", [Series({}, points)])


def _image(png: bytes | None) -> Image.Image:
    assert png is not None
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png))


def _colours(img: Image.Image) -> int:
    return len(img.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_memory_chart_draws_history_forecast_and_limit() -> None:
    rng = _growing()
    fit = linear_fit(rng.series[0].points)
    runs_out = NOW + dt.timedelta(days=11.8)
    forecast = Forecast("memory", "bytes", 17 * GIB, 28.8 * GIB, "the 90% load threshold", fit, runs_out)
    with_forecast = _image(charts.memory_chart({"qn_memory": rng}, [forecast], "prod", NOW))
    without = _image(charts.memory_chart({"qn_memory": rng}, [], "prod", NOW))
    assert with_forecast.size == (800, 360)
    # The forecast line and the red limit line add colours the bare history does not have.
    assert _colours(with_forecast) > _colours(without)


def test_memory_chart_falls_back_to_process_memory() -> None:
    empty = Range("q", [])
    assert charts.memory_chart({"qn_memory": empty}, [], "prod", NOW) is None
    assert _image(charts.memory_chart({"qn_memory": empty, "process_memory": _growing()}, [], "prod", NOW))


def test_rows_and_latency_charts() -> None:
    assert _image(charts.rows_chart({"rows": _growing(per_day=250_000, start=1e6)}, "prod", NOW)).size == (800, 360)
    assert charts.rows_chart({}, "prod", NOW) is None
    t0 = NOW.timestamp() - DAY
    nan = float("nan")
    search = Range("s", [Series({}, [(t0 + i * 300, nan if i % 10 == 0 else 5.0 + i % 7) for i in range(288)])])
    idle = Range("q", [Series({}, [(t0 + i * 300, nan) for i in range(288)])])
    assert _image(charts.latency_chart({"search p99": search, "query p99": idle}, "prod", NOW))
    assert charts.latency_chart({"query p99": Range("q", [], error="Prometheus down")}, "prod", NOW) is None
