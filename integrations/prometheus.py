"""Prometheus through prometheus-api-client: instant and range queries, many at once.

A report issues a dozen queries; they run on a small thread pool so the report takes about as long
as the slowest query, not the sum. Results keep "no such series" apart from a value of zero: a
missing series is reported as not available, with the reason, and never shown as 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bot.errors import IntegrationError

log = logging.getLogger("milvus_chatops.prometheus")

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class Instant:
    """What an instant query gave: samples, or why there are none."""

    query: str
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None  # Prometheus rejected the query or could not be reached
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def reason(self) -> str:
        """Why there is no value (only meaningful when not ``ok``)."""
        return self.error or "no such series in Prometheus"

    def scalar(self) -> float | None:
        """The single value of an aggregated query (None when there is no series)."""
        return self.samples[0].value if self.ok else None


@dataclass(frozen=True)
class Range:
    query: str
    series: list[Series] = field(default_factory=list)
    error: str | None = None
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and any(s.points for s in self.series)

    @property
    def reason(self) -> str:
        return self.error or "no such series in Prometheus"


def _number(raw: Any) -> float:
    # Prometheus sends values as strings, including "NaN" and "+Inf".
    return float(raw)


class Prometheus:
    """One Prometheus server; takes a ``PrometheusConnect`` (no I/O until a query)."""

    def __init__(
        self, client: Any, *, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = DEFAULT_WORKERS
    ) -> None:
        self.client = client
        self.url = url
        self.timeout_s = timeout_s
        self.workers = workers
        self.queries_issued = 0

    # -- single queries: raise IntegrationError ------------------------------------------------

    def query(self, promql: str, *, at: dt.datetime | None = None) -> list[Sample]:
        params = {"time": f"{at.timestamp():.3f}"} if at else None
        raw = self._call("query", lambda: self.client.custom_query(promql, params=params, timeout=self.timeout_s))
        samples = []
        for item in raw:
            if "value" in item:
                samples.append(Sample(dict(item.get("metric", {})), _number(item["value"][1])))
        return samples

    def query_range(self, promql: str, *, start: dt.datetime, end: dt.datetime, step_s: float) -> list[Series]:
        raw = self._call(
            "range query",
            lambda: self.client.custom_query_range(
                promql, start_time=start, end_time=end, step=f"{max(step_s, 1):.3f}", timeout=self.timeout_s
            ),
        )
        out = []
        for item in raw:
            points = [(float(t), _number(v)) for t, v in item.get("values", [])]
            out.append(Series(dict(item.get("metric", {})), points))
        return out

    def alert_rules(self) -> dict[str, dict[str, str]]:
        """Alerting rules Prometheus has loaded (rules API): name -> annotations."""

        def fetch() -> Any:
            response = self.client._session.get(
                f"{self.client.url}/api/v1/rules", params={"type": "alert"}, timeout=self.timeout_s
            )
            response.raise_for_status()
            return response.json()

        body = self._call("rules request", fetch)
        rules: dict[str, dict[str, str]] = {}
        for group in (body.get("data") or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                if rule.get("type") == "alerting" and rule.get("name"):
                    rules[str(rule["name"])] = dict(rule.get("annotations") or {})
        return rules

    def ping(self) -> None:
        """Raise IntegrationError unless Prometheus answers a trivial query."""
        self.query("vector(1)")

    def _call(self, what: str, fn: Any) -> Any:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        self.queries_issued += 1
        try:
            return fn()
        except requests.exceptions.Timeout as exc:
            raise IntegrationError(
                f"Prometheus at {self.url} did not answer a {what} within {self.timeout_s:g} s", system="prometheus"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(
                f"Prometheus at {self.url} is unreachable (connection failed); no metrics could be read",
                system="prometheus",
            ) from exc
        except PrometheusApiClientException as exc:
            raise IntegrationError(
                f"Prometheus at {self.url} rejected a {what}: {_short(exc)}", system="prometheus"
            ) from exc
        except (requests.exceptions.RequestException, ValueError, KeyError) as exc:
            raise IntegrationError(f"Prometheus at {self.url} failed a {what}: {exc}", system="prometheus") from exc

    # -- many queries at once: failures are kept per query --------------------------------------

    def instant_many(self, queries: Mapping[str, str], *, at: dt.datetime | None = None) -> dict[str, Instant]:
        def one(promql: str) -> Instant:
            try:
                return Instant(promql, self.query(promql, at=at))
            except Unreachable as exc:
                return Instant(promql, error=exc.message, unreachable=True)
            except IntegrationError as exc:
                return Instant(promql, error=exc.message)

        return self._fan_out(queries, one)

    def range_many(
        self, queries: Mapping[str, str], *, start: dt.datetime, end: dt.datetime, step_s: float
    ) -> dict[str, Range]:
        def one(promql: str) -> Range:
            try:
                return Range(promql, self.query_range(promql, start=start, end=end, step_s=step_s))
            except Unreachable as exc:
                return Range(promql, error=exc.message, unreachable=True)
            except IntegrationError as exc:
                return Range(promql, error=exc.message)

        return self._fan_out(queries, one)

    def _fan_out(self, queries: Mapping[str, str], one: Any) -> dict[str, Any]:
        if not queries:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.workers, len(queries)), thread_name_prefix="prom") as pool:
            futures = {key: pool.submit(one, promql) for key, promql in queries.items()}
            return {key: future.result() for key, future in futures.items()}

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()


class Unreachable(IntegrationError):
    """Prometheus could not be reached at all (as opposed to rejecting one query)."""


def _short(exc: Exception) -> str:
    text = str(exc)
    # The client puts the whole response body in the message; Prometheus' "error" field is the useful part.
    found = re.search(r'"error":"(.*?)"\}', text)
    if found:
        text = found.group(1).replace("\\\\", "\\").replace('\\"', '"')
    return text[:300]


def connect(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = DEFAULT_WORKERS) -> Prometheus:
    """A Prometheus for ``url``. No I/O happens here."""
    from prometheus_api_client import PrometheusConnect
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    # The library retries three times with back-off by default: a down Prometheus would take seconds
    # to report. One quick retry of a refused connection is enough; a read timeout is not retried
    # (read=False re-raises it as itself, so it is reported as a timeout, not as "unreachable").
    retry = Retry(total=1, connect=1, read=False, status=0, backoff_factor=0.1)
    client = PrometheusConnect(url=url.rstrip("/"), retry=retry, timeout=timeout_s)
    # Size the connection pool for the thread pool, so concurrent queries do not queue on sockets.
    client._session.mount(client.url, HTTPAdapter(pool_connections=1, pool_maxsize=workers, max_retries=retry))
    return Prometheus(client, url=url, timeout_s=timeout_s, workers=workers)
