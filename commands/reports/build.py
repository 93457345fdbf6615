"""Building a report: all its queries sent at once (instant and range together), the checks, the
charts; ``make_report`` is what commands and schedules call."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.config import Environment, HealthThresholds
from bot.errors import IntegrationError
from bot.reply import Attachment
from bot.units import format_duration, parse_duration
from commands.reports import charts as ch
from commands.reports.checks import (
    CollectionNames,
    Line,
    Status,
    capacity_lines,
    collection_names_from,
    health_lines,
    recommend,
)
from commands.reports.forecast import DAY
from commands.reports.queries import capacity_queries, capacity_range_queries, health_queries, latency_range_queries
from commands.reports.render import Kind, Report
from integrations.prometheus import Instant, Prometheus, Range


def _unreachable_everywhere(results: Iterable[Instant | Range]) -> str | None:
    results = list(results)
    if results and all(r.unreachable for r in results):
        return results[0].error
    return None


def _fail_if_down(results: Iterable[Instant | Range], prom: Prometheus) -> None:
    error = _unreachable_everywhere(results)
    if error:
        raise IntegrationError(
            error, hint="Check that Prometheus is running and that `prometheus_url` is right.", system="prometheus"
        )


def build_health(
    prom: Prometheus,
    env: Environment,
    thresholds: HealthThresholds,
    *,
    charts: bool = True,
    now: dt.datetime | None = None,
) -> Report:
    started = time.perf_counter()
    before = prom.queries_issued
    now = now or dt.datetime.now(dt.UTC)
    queries = health_queries(env)
    ranges_q = latency_range_queries(env) if charts else {}
    # Instant and range queries go out together: the report waits for the slowest one only.
    results, ranges = _together(prom, queries, ranges_q, now, dt.timedelta(hours=24))
    _fail_if_down(results.values(), prom)
    report = Report("health", env.name, prom.url, now, health_lines(results, thresholds), series=ranges)
    report.window_s = 24 * 3600.0 if charts else None
    if charts:
        png = ch.latency_chart(ranges, env.name, now)
        if png:
            report.charts.append(Attachment(f"health-{env.name}.png", png, f"Latency p99 in {env.name}, last 24 h"))
    report.queries = prom.queries_issued - before
    report.elapsed_s = time.perf_counter() - started
    return report


def build_capacity(
    prom: Prometheus,
    env: Environment,
    thresholds: HealthThresholds,
    *,
    window: dt.timedelta = dt.timedelta(days=7),
    charts: bool = True,
    now: dt.datetime | None = None,
    collection_names: CollectionNames | None = None,
) -> Report:
    started = time.perf_counter()
    before = prom.queries_issued
    now = now or dt.datetime.now(dt.UTC)
    results, ranges = _together(prom, capacity_queries(env), capacity_range_queries(env), now, window)
    _fail_if_down([*results.values(), *ranges.values()], prom)
    lines, forecasts, facts = capacity_lines(results, ranges, thresholds, now, collection_names)
    report = Report(
        "capacity", env.name, prom.url, now, lines, forecasts=forecasts, series=ranges, window_s=window.total_seconds()
    )
    report.recommendation = recommend(env.name, facts, now)
    if charts:
        days = window.total_seconds() / DAY
        span = f"{days:.0f} days" if days >= 1 else format_duration(window.total_seconds())
        mem_png = ch.memory_chart(ranges, forecasts, env.name, now)
        if mem_png:
            report.charts.append(
                Attachment(
                    f"capacity-memory-{env.name}.png",
                    mem_png,
                    f"Query node memory in {env.name}, last {span}, with forecast",
                )
            )
        rows_png = ch.rows_chart(ranges, env.name, now)
        if rows_png:
            report.charts.append(
                Attachment(f"capacity-rows-{env.name}.png", rows_png, f"Rows in {env.name}, last {span}, with forecast")
            )
    report.queries = prom.queries_issued - before
    report.elapsed_s = time.perf_counter() - started
    return report


def _together(
    prom: Prometheus, instant: dict[str, str], ranged: dict[str, str], now: dt.datetime, window: dt.timedelta
) -> tuple[dict[str, Instant], dict[str, Range]]:
    # About 250 points per series whatever the window: enough to fit and draw, small to transfer.
    step = max(window.total_seconds() / 250, 1.0)
    if not ranged:
        return prom.instant_many(instant, at=now), {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(prom.instant_many, instant, at=now)
        b = pool.submit(prom.range_many, ranged, start=now - window, end=now, step_s=step)
        return a.result(), b.result()


def parse_window(text: str) -> dt.timedelta:
    """``7d``, ``30d``, ``12h``, ``90m``: the span capacity growth is fitted on."""
    return parse_duration(text, minimum=dt.timedelta(minutes=1), maximum=dt.timedelta(days=90), noun="window",
                          examples="`7d`, `30d`, `12h` or `90m`")


def make_report(
    runtime: Any, env: Environment, kind: Kind, *, window: dt.timedelta | None = None, charts: bool = True
) -> Report:
    prom = runtime.services.prometheus(env)
    try:
        th = runtime.config.health_thresholds
        if kind == "health":
            report = build_health(prom, env, th, charts=charts)
            # Imported here: the certificate probe belongs to the security capability; reports borrow it.
            from commands.security.watch import certificate_status

            certificate = certificate_status(runtime, env)
            if certificate is not None:
                report.lines.append(Line("certificate", "TLS certificate", Status(certificate[0]), certificate[1]))
            return report
        return build_capacity(
            prom,
            env,
            th,
            window=window or dt.timedelta(days=7),
            charts=charts,
            collection_names=_names_via_milvus(runtime, env),
        )
    finally:
        prom.close()


def _names_via_milvus(runtime: Any, env: Environment) -> CollectionNames:
    def names() -> dict[str, str]:

        client = runtime.services.milvus_client(env)
        return collection_names_from(client, timeout_s=env.milvus.timeout_s)()

    return names
