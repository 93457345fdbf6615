"""How long a plan takes: plan() over many inputs, against a trivial pydantic validation in the same run.

The target is under 10 ms per plan. Run: ``.venv/bin/python bench/bench_plan.py [--inputs 2000]``.
Prints median / p99 / max in microseconds for: a trivial pydantic model (the baseline), input
validation, plan(), plan() with a 120-month growth horizon (the largest horizon: the stop month is
bisected, five phases are sized), and Helm values rendering. Each input is timed best of 3; a busy
machine still shows in p99 and max, which is why the baseline runs in the same process.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commands.plan.sizing import Plan, PlanInput, parse_plan_input, plan
from commands.plan.values import render_values

INDEXES = [
    "FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "IVF_RABITQ", "HNSW", "DISKANN", "SCANN", "BIN_FLAT", "BIN_IVF_FLAT",
]  # fmt: skip
PRICES = {"core_hour": 0.04, "gib_hour": 0.005, "disk_gib_month": 0.08, "object_gib_month": 0.02}


class Trivial(BaseModel):
    vectors: int
    dim: int


def random_fields(rng: random.Random, months: int | None = None) -> dict[str, Any]:
    index = rng.choice(INDEXES)
    dim = rng.choice([128, 256, 512, 768, 1024, 1536, 3072])
    version = "2.6" if index == "IVF_RABITQ" else rng.choice(["2.5", "2.6"])
    mq = rng.choice([None, "pulsar", "kafka"] + (["woodpecker"] if version == "2.6" else []))
    fields: dict[str, Any] = {
        "vectors": rng.choice([10**5, 10**6, 10**7, 5 * 10**7, 10**8, 5 * 10**8, 10**9]),
        "dim": dim,
        "index": index,
        "milvus_version": version,
        "replicas": rng.choice([1, 1, 2, 3]),
        "scalar_bytes": rng.choice([0, 64, 512]),
        "scalars_mmap": rng.random() < 0.3,
        "segment_size_mb": rng.choice([512, 1024, 2048]),
        "growth_per_month": rng.choice([0, 10**6, 10**7]),
        "months": rng.choice([0, 6, 12, 24]) if months is None else months,
        "backup_retention_copies": rng.choice([0, 7]),
        "prices": PRICES if rng.random() < 0.5 else None,
    }
    if mq:
        fields["mq"] = mq
    if index == "IVF_PQ":
        fields["pq_m"] = dim // 8
    return fields


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Microseconds for one call (best of ``repeat`` to shave scheduler noise)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        best = min(best, time.perf_counter_ns() - start)
    return best / 1000


def summary(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    raw = [random_fields(rng) for _ in range(args.inputs)]
    worst_raw = [{**random_fields(rng, months=120), "growth_per_month": 10**6} for _ in range(args.inputs // 4)]
    small = [{"vectors": f["vectors"], "dim": f["dim"]} for f in raw]
    inputs: list[PlanInput] = [parse_plan_input(f) for f in raw]
    worst: list[PlanInput] = [parse_plan_input(f) for f in worst_raw]
    plans: list[Plan] = [p for p in map(plan, inputs) if p.mode != "beyond"][: args.inputs // 4]
    render_values(plans[0])  # loads and compiles the template once, as the bot does

    rows = [
        ("baseline: Trivial(vectors, dim) validation", [timed(lambda f=f: Trivial(**f), 3) for f in small]),
        ("parse_plan_input (validation)", [timed(lambda f=f: parse_plan_input(f), 3) for f in raw]),
        ("plan()", [timed(lambda i=i: plan(i), 3) for i in inputs]),
        ("plan(), 120-month horizon", [timed(lambda i=i: plan(i), 3) for i in worst]),
        ("render_values(plan)", [timed(lambda p=p: render_values(p), 3) for p in plans]),
    ]
    base_median = summary(rows[0][1])[0]
    print(f"python {sys.version.split()[0]}, {args.inputs} random inputs (seed {args.seed}); microseconds per call")
    print(f"{'what':44} {'n':>6} {'median':>9} {'p99':>9} {'max':>9} {'median/baseline':>16}")
    for name, samples in rows:
        median, p99, worst_us = summary(samples)
        print(f"{name:44} {len(samples):>6} {median:>9.1f} {p99:>9.1f} {worst_us:>9.1f} {median / base_median:>15.0f}x")
    plan_p99 = max(summary(rows[2][1])[1], summary(rows[3][1])[1])
    verdict = "OK" if plan_p99 < 10_000 else "TOO SLOW"
    print(f"target: a plan in < 10,000 us; worst p99 {plan_p99:,.0f} us -> {verdict}")


if __name__ == "__main__":
    main()
