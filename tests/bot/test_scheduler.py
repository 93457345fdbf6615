"""Scheduled runs happen once: across replicas sharing the store, and across a restart."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from bot import scheduler as sched
from bot.config import embedded_default
from bot.context import Runtime
from bot.registry import Registry
from bot.scheduler import JobSpec, Scheduler, last_runs, run_job
from bot.settings import Settings
from bot.state import Store
from tests.support.runtime import build_test_runtime
from tests.support.wait import wait_for

RUNS: list[str] = []


def count_run(runtime: Runtime, *, env: str, label: str) -> str:
    RUNS.append(label)
    return f"counted {label}"


def failing_run(runtime: Runtime, *, env: str) -> str:
    raise RuntimeError("disk on fire")


def counting_registry() -> Registry:
    registry = Registry()
    registry.task("test-count", count_run)
    registry.task("test-fail", failing_run)
    return registry


class NullMessenger:
    def post(self, *a, **k):
        return "ref"

    def update(self, *a, **k):
        return None

    def upload(self, *a, **k):
        return None


def make_runtime(tmp_path, registry: Registry | None = None) -> Runtime:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    settings = Settings(MILVUS_CHATOPS_DATA_DIR=str(tmp_path))
    return build_test_runtime(settings=settings, config=embedded_default(tmp_path), store=store,
                              messenger=NullMessenger(),
                              registry=registry or counting_registry())


@pytest.fixture(autouse=True)
def clean():
    RUNS.clear()
    yield
    RUNS.clear()


def test_two_replicas_run_a_due_job_once(tmp_path):
    replicas = [make_runtime(tmp_path), make_runtime(tmp_path)]
    spec = JobSpec("backup:local", "test-count", "0 2 * * *", kwargs={"env": "local", "label": "nightly"})
    due = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
    results: list[str | None] = []
    barrier = threading.Barrier(2)

    def fire(runtime: Runtime) -> None:
        barrier.wait()
        results.append(run_job(runtime, spec, due))

    threads = [threading.Thread(target=fire, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert RUNS == ["nightly"]
    assert results.count(None) == 1 and "counted nightly" in results
    assert last_runs(replicas[0])["backup:local"]["outcome"] == "ok"


def test_a_failed_run_is_recorded_and_audited_with_a_reference(tmp_path):
    runtime = make_runtime(tmp_path)
    spec = JobSpec("report:local", "test-fail", "0 8 * * *", kwargs={"env": "local"})
    summary = run_job(runtime, spec, dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC))
    assert summary is not None and "reference" in summary and "disk on fire" not in summary
    assert last_runs(runtime)["report:local"]["outcome"] == "failed"
    entry = runtime.audit.recent(limit=1)[0]
    assert (entry.kind, entry.outcome, entry.environment) == ("schedule", "failed", "local")


def test_a_run_that_came_due_while_the_bot_was_down_runs_once_after_restart(tmp_path):
    spec = JobSpec("count:local", "test-count", "0 3 * * *", kwargs={"env": "local", "label": "missed"})
    registry = counting_registry()
    registry.job_source(lambda config: [spec])
    first = Scheduler(make_runtime(tmp_path, registry))
    first.start()
    # Pretend the 03:00 run came due a minute ago, while nobody was running.
    first._scheduler.pause()
    first._scheduler.modify_job("count:local", next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    first.stop()
    assert RUNS == []

    second = Scheduler(make_runtime(tmp_path, registry))
    second.start()
    wait_for(lambda: RUNS == ["missed"], timeout=10, message=lambda: f"runs: {RUNS}")
    next_run = second.next_runs()["count:local"]
    assert next_run is not None and next_run > dt.datetime.now(dt.UTC)
    second.stop()
    assert RUNS == ["missed"]


def test_the_due_run_time_is_the_latest_cron_time_in_the_jobs_timezone():
    spec = JobSpec("j", "t", "0 2 * * *", "Europe/Berlin")
    assert sched.last_fire_time(spec, dt.datetime(2026, 11, 25, 13, 0, tzinfo=dt.UTC)) == dt.datetime(
        2026, 11, 25, 1, 0, tzinfo=dt.UTC
    )
