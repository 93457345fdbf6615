"""Approvals and deploy previews: how fast a click is decided, and that racing clicks run a change once.

Measures, through the real Dispatcher and a real SQLite state store (synchronous=FULL):
- approve click latency (p50 / p99 / max) for a first approval that does not complete a request;
- races: R rounds of T threads pressing Approve on the same one-approval request at once; reports
  how many executions happened (must be exactly R) and the wall time per round;
- `/milvus deploy <env> --dry-run` latency against the FAKE helm (a Python script on PATH, so each
  helm call costs a Python start-up, as a real helm costs a Go start-up plus API calls) and the FAKE
  Kubernetes API server on loopback; the preview makes 3-4 helm calls (status, get values, upgrade
  --dry-run, and status again when helm prints no JSON for the dry run) and 3 Kubernetes reads.
  The first run includes importing the kubernetes client.

    .venv/bin/python bench/bench_deploy.py [--clicks 200] [--rounds 30] [--threads 8] [--previews 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.access import Identity  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.context import Context, Runtime  # noqa: E402
from bot.dispatch import Dispatcher  # noqa: E402
from bot.reply import Attachment, Message, Reply  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.state import Store  # noqa: E402
from commands import build_registry  # noqa: E402
from commands.approvals.workflow import Approvals  # noqa: E402

RUNS: list[str] = []
RUNS_LOCK = threading.Lock()


def _execute(ctx: Context, request: Any) -> Reply:
    with RUNS_LOCK:
        RUNS.append(request.id)
    return Reply(text="done")


class NullMessenger:
    def post(self, channel: str, message: Message, *, ref: str | None = None, thread_ref: str | None = None,
             dedupe_key: str | None = None) -> str:
        return ref or "x"

    def update(self, ref: str, message: Message) -> None:
        return None

    def upload(self, channel: str, files: list[Attachment], *, thread_ref: str | None = None,
               comment: str = "") -> None:
        return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def runtime_for(directory: Path, config: dict[str, Any]) -> Runtime:
    store = Store(f"sqlite:///{directory / 'state.db'}")
    store.migrate()
    registry = build_registry()
    registry.executor("bench-change", _execute)
    return Runtime(settings=Settings(data_dir=directory), config=Config.model_validate(config), store=store,
                   messenger=NullMessenger(), registry=registry)


def approval_config(required: int) -> dict[str, Any]:
    approvers = [f"UAPP{i}" for i in range(16)]
    return {
        "environments": {"prod": {"milvus": {"uri": "/nonexistent.db"}, "channels": {"approvals": "C1"},
                                  "approval": {"required": True, "approvers": approvers,
                                               "approvals_required": required}}},
        "access": [{"role": "operator", "users": ["UREQ", *approvers]}],
    }


def ask(runtime: Runtime) -> str:
    ctx = Context(runtime, Identity("UREQ"), runtime.config.environments["prod"], "C0")
    return Approvals(runtime).request(ctx, kind="bench-change", env="prod", title="bench", summary_blocks=[],
                                      payload={"n": time.perf_counter()}).id


def bench_clicks(clicks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = runtime_for(Path(tmp), approval_config(required=2))
        dispatcher = Dispatcher(runtime)
        timings = []
        for _ in range(clicks):
            request_id = ask(runtime)
            started = time.perf_counter()
            outcome = dispatcher.run_action(f"approval_approve:{request_id}", {"env": "prod", "id": request_id},
                                            Identity("UAPP1"))
            timings.append((time.perf_counter() - started) * 1000)
            assert outcome.exit_code == 0, outcome.reply.text
        print(f"approve click (1 of 2, {clicks} clicks): p50 {pct(timings, 0.5):.1f} ms, "
              f"p99 {pct(timings, 0.99):.1f} ms, max {max(timings):.1f} ms")


def bench_races(rounds: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = runtime_for(Path(tmp), approval_config(required=1))
        dispatcher = Dispatcher(runtime)
        RUNS.clear()
        walls = []
        started_ok = 0
        for _ in range(rounds):
            request_id = ask(runtime)
            barrier = threading.Barrier(threads)
            results: list[str] = []

            def press(user: str, rid: str = request_id, bar: threading.Barrier = barrier,
                      out: list[str] = results) -> None:
                bar.wait()
                outcome = dispatcher.run_action(f"approval_approve:{rid}", {"env": "prod", "id": rid},
                                                Identity(user))
                out.append(outcome.reply.text)

            workers = [threading.Thread(target=press, args=(f"UAPP{i}",)) for i in range(threads)]
            begin = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            walls.append((time.perf_counter() - begin) * 1000)
            Approvals.wait(request_id, 10)
            started_ok += sum("running request" in r for r in results)
        print(f"races: {rounds} rounds x {threads} simultaneous final approvals -> {len(RUNS)} executions "
              f"({started_ok} clicks told 'running'); round wall p50 {pct(walls, 0.5):.0f} ms, "
              f"max {max(walls):.0f} ms")
        assert len(RUNS) == rounds, "a request ran more than once (or not at all)"


def bench_previews(previews: int) -> None:
    from tests.support.fake_helm import FakeHelm
    from tests.support.fake_kube import FakeKube

    with tempfile.TemporaryDirectory() as tmp, FakeKube(workdir=Path(tmp) / "kube") as kube:
        helm = FakeHelm(Path(tmp) / "helm")
        helm.set_chart("milvus/milvus", {"4.2.50": "2.5.14", "4.2.58": "2.5.16"})
        helm.seed_release("milvus", "milvus-dev", version="4.2.50", app_version="2.5.14",
                          values={"queryNode": {"replicas": 3}}, revisions=2)
        os.environ.update(helm.env_updates())
        config = {
            "environments": {"dev": {
                "milvus": {"uri": str(Path(tmp) / "m.db")},
                "kubernetes": {"kubeconfig": str(kube.kubeconfig_path()), "namespace": "milvus-dev"},
                "helm": {"milvus_version": "2.5.16", "values": {"queryNode": {"replicas": 2}}},
            }},
            "access": [{"role": "operator", "users": ["UREQ"]}],
        }
        runtime = runtime_for(Path(tmp), config)
        dispatcher = Dispatcher(runtime)
        timings = []
        for _ in range(previews):
            started = time.perf_counter()
            outcome = dispatcher.run_command("/milvus deploy dev --dry-run", Identity("UREQ"))
            timings.append((time.perf_counter() - started) * 1000)
            assert outcome.exit_code == 0, outcome.reply.text
        calls = len(helm.calls()) / previews
        print(f"deploy --dry-run preview ({previews} runs, {calls:.0f} helm calls each, fakes): "
              f"p50 {statistics.median(timings):.0f} ms, max {max(timings):.0f} ms")
        runtime.services.close_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--previews", type=int, default=10)
    args = parser.parse_args()
    bench_clicks(args.clicks)
    bench_races(args.rounds, args.threads)
    bench_previews(args.previews)


if __name__ == "__main__":
    main()
