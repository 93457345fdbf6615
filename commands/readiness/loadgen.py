"""The load generator behind ``/milvus loadtest``, and exact search for recall.

Two ways to drive load:
- closed loop (default): ``concurrency`` workers each send the next search as soon as the last one
  answered. It measures the most the cluster serves to that many clients.
- open loop (``qps``): searches are due at fixed times, ``1/qps`` apart, whatever the answers do; a
  search's latency is counted from when it was *due*, not from when a worker got to it, so a slow
  cluster shows up as growing latency instead of a quietly lower rate (no coordinated omission).

Nothing here knows about Slack or the state store: it takes a ``search(vectors)`` callable.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Search = Callable[[list[list[float]]], Any]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadSpec:
    duration_s: float
    concurrency: int = 1
    qps: float | None = None  # None: closed loop
    progress_every_s: float = 2.0


@dataclass
class LoadResult:
    elapsed_s: float
    # (seconds since start when the search was due or sent, latency in seconds, ok)
    samples: list[tuple[float, float, bool]] = field(default_factory=list)
    first_error: str | None = None

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def errors(self) -> int:
        return sum(1 for _, _, ok in self.samples if not ok)

    @property
    def qps(self) -> float:
        """Answered searches (failed ones included) per second over the run."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latencies_ms(self) -> np.ndarray:
        return np.array([lat * 1000 for _, lat, ok in self.samples if ok], dtype=np.float64)

    def percentiles(self) -> dict[str, float | None]:
        lat = self.latencies_ms()
        if lat.size == 0:
            return {"p50": None, "p95": None, "p99": None, "max": None}
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
                "max": round(float(lat.max()), 3)}

    def timeline(self) -> list[tuple[int, int, float | None, float | None]]:
        """Per second of the run: (second, searches answered, p50 ms, p99 ms)."""
        buckets: dict[int, list[float]] = {}
        counts: dict[int, int] = {}
        for at, lat, ok in self.samples:
            second = int(at + lat)  # when the answer came
            counts[second] = counts.get(second, 0) + 1
            if ok:
                buckets.setdefault(second, []).append(lat * 1000)
        out: list[tuple[int, int, float | None, float | None]] = []
        for second in range(max(counts, default=-1) + 1):
            answered = buckets.get(second)
            if answered:
                p50, p99 = np.percentile(answered, [50, 99])
                out.append((second, counts.get(second, 0), float(p50), float(p99)))
            else:
                out.append((second, counts.get(second, 0), None, None))
        return out


def run_load(search: Search, batches: Sequence[list[list[float]]], spec: LoadSpec,
             progress: Progress | None = None) -> LoadResult:
    """Send searches for ``spec.duration_s``; each request searches the next batch of query vectors."""
    if not batches:
        raise ValueError("no query vectors to search with")
    per_worker: list[list[tuple[float, float, bool]]] = [[] for _ in range(spec.concurrency)]
    errors: list[str] = []
    counter = itertools.count()  # next() on a count is atomic under the GIL: one slot per request
    start = time.perf_counter()
    deadline = start + spec.duration_s
    n = len(batches)
    clock = time.perf_counter

    def closed(out: list[tuple[float, float, bool]]) -> None:
        while True:
            i = next(counter)
            sent = clock()
            if sent >= deadline:
                return
            try:
                search(batches[i % n])
                ok = True
            except Exception as exc:
                ok = False
                if not errors:
                    errors.append(_describe(exc))
            out.append((sent - start, clock() - sent, ok))

    def opened(out: list[tuple[float, float, bool]]) -> None:
        assert spec.qps is not None
        interval = 1.0 / spec.qps
        while True:
            i = next(counter)
            due = start + i * interval
            if due >= deadline:
                return
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)
            try:
                search(batches[i % n])
                ok = True
            except Exception as exc:
                ok = False
                if not errors:
                    errors.append(_describe(exc))
            out.append((due - start, clock() - due, ok))

    body = opened if spec.qps else closed
    threads = [threading.Thread(target=body, args=(per_worker[w],), name=f"loadtest-{w}", daemon=True)
               for w in range(spec.concurrency)]
    for thread in threads:
        thread.start()
    next_report = clock() + spec.progress_every_s
    while alive := [t for t in threads if t.is_alive()]:
        alive[0].join(max(next_report - clock(), 0.0))
        if clock() >= next_report:
            next_report += spec.progress_every_s
            if progress:
                progress(_progress_line(per_worker, clock() - start, spec.duration_s))
    for thread in threads:
        thread.join()
    elapsed = clock() - start
    samples = sorted(itertools.chain.from_iterable(per_worker))
    return LoadResult(elapsed, samples, errors[0] if errors else None)


def _progress_line(per_worker: list[list[tuple[float, float, bool]]], elapsed: float, duration: float) -> str:
    # Reading the workers' lists while they append is safe: list.append is atomic and we only read.
    done = sum(len(w) for w in per_worker)
    failed = sum(1 for w in per_worker for s in list(w) if not s[2])
    recent = [s[1] * 1000 for w in per_worker for s in list(w)[-200:] if s[2]]
    p99 = f", p99 {np.percentile(recent, 99):,.1f} ms lately" if recent else ""
    return (f"{min(elapsed, duration):,.0f} s of {duration:,.0f} s: {done:,} searches "
            f"({done / max(elapsed, 1e-9):,.1f}/s){p99}, {failed:,} failed")


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)[:300]


# -- exact search ------------------------------------------------------------------------------------


class ExactTopK:
    """Exact top-k of a few queries over a collection read batch by batch (memory stays bounded)."""

    def __init__(self, queries: np.ndarray, k: int, metric: str) -> None:
        self.metric = metric.upper()
        q = np.asarray(queries, dtype=np.float32)
        if self.metric == "COSINE":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        self.queries = q
        self.k = k
        self.best_scores = np.full((len(q), 0), np.inf, dtype=np.float64)
        self.best_ids: list[list[Any]] = [[] for _ in range(len(q))]

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """Lower is nearer, for every metric."""
        q = self.queries.astype(np.float64)
        x64 = x.astype(np.float64)
        if self.metric == "L2":
            return np.asarray((q**2).sum(1)[:, None] - 2 * q @ x64.T + (x64**2).sum(1)[None, :])
        if self.metric == "COSINE":
            x64 = x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-30)
        if self.metric in ("IP", "COSINE"):
            return np.asarray(-(q @ x64.T))
        raise ValueError(f"exact search does not support metric {self.metric}")

    def add(self, ids: Sequence[Any], vectors: Iterable[Sequence[float]]) -> None:
        x = np.asarray(list(vectors), dtype=np.float32)
        if x.size == 0:
            return
        scores = np.concatenate([self.best_scores, self._scores(x)], axis=1)
        keep = min(self.k, scores.shape[1])
        order = np.argsort(scores, axis=1, kind="stable")[:, :keep]
        for row in range(len(self.queries)):
            pool = [*self.best_ids[row], *ids]
            self.best_ids[row] = [pool[j] for j in order[row]]
        self.best_scores = np.take_along_axis(scores, order, axis=1)

    def recall(self, found: Sequence[Sequence[Any]]) -> float:
        """Mean share of the exact top-k that a search found."""
        shares = []
        for exact, got in zip(self.best_ids, found, strict=True):
            if exact:
                shares.append(len(set(exact) & set(got[: self.k])) / len(exact))
        return float(np.mean(shares)) if shares else math.nan
