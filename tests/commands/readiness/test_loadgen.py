"""The load generator's accounting and the exact search behind recall, without a server."""

from __future__ import annotations

import time

import numpy as np
import pytest

from commands.readiness.loadgen import ExactTopK, LoadSpec, run_load


def test_open_loop_counts_latency_from_when_a_search_was_due() -> None:
    """A server slower than the asked rate shows up as growing latency, not as a quietly lower rate."""

    def slow(_vectors: list[list[float]]) -> None:
        time.sleep(0.1)  # at most 10 answers a second with one worker

    result = run_load(slow, [[[0.0]]], LoadSpec(duration_s=1.0, concurrency=1, qps=40))
    assert result.requests >= 8
    latencies = [lat for _, lat, _ in result.samples]
    assert latencies[-1] > latencies[0] + 0.3  # queued behind the earlier ones
    assert result.percentiles()["max"] >= 300


def test_failures_are_counted_and_the_first_reason_kept() -> None:
    calls = []

    def flaky(_vectors: list[list[float]]) -> None:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("collection not loaded")

    result = run_load(flaky, [[[0.0]]], LoadSpec(duration_s=0.3, concurrency=1, qps=50))
    assert result.requests == len(calls) and result.errors == (len(calls) + 1) // 2
    assert result.first_error == "collection not loaded"


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_exact_top_k_over_batches_equals_brute_force(metric: str) -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((1000, 8)).astype(np.float32)
    queries = data[:5] + 0.01
    exact = ExactTopK(queries, 10, metric)
    for start in range(0, 1000, 128):  # batch edges must not matter
        exact.add(list(range(start, min(start + 128, 1000))), data[start : start + 128])
    if metric == "L2":
        scores = ((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    else:
        d, q = data, queries
        if metric == "COSINE":
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        scores = -(q @ d.T)
    truth = np.argsort(scores, axis=1)[:, :10]
    assert [list(row) for row in truth] == exact.best_ids
    assert exact.recall([list(row) for row in truth]) == 1.0
    assert exact.recall([list(row[:5]) + [-1] * 5 for row in truth]) == 0.5
