"""Watching a rollout: the release's pods and warning events, polled while helm waits."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from bot import blocks as bk
from bot.errors import IntegrationError
from bot.state import utcnow
from integrations.kubernetes import KubeCluster, Readiness, milvus_selector, readiness

WATCH_INTERVAL_S = 3.0


class RolloutWatcher:
    """Polls the release's pods and warning events while helm waits, and reports changes."""

    def __init__(self, kube: KubeCluster, namespace: str, release: str, report: Callable[[str], None]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.release = release
        self.report = report
        self.stop_event = threading.Event()
        self.seen_events: set[str] = set()
        self.problems: list[str] = []
        self.last_line = ""
        self.since = utcnow() - dt.timedelta(seconds=5)
        self.thread = threading.Thread(target=self._loop, name=f"rollout-{release}", daemon=True)

    def __enter__(self) -> RolloutWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=WATCH_INTERVAL_S * 3)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll()
            except IntegrationError as exc:
                self.report(f":grey_question: Cannot read pods right now: {bk.escape(exc.message)}")
            self.stop_event.wait(WATCH_INTERVAL_S)

    def poll(self) -> Readiness:
        state = readiness(self.kube.pods(self.namespace, milvus_selector(self.release)))
        line = f":arrows_counterclockwise: {state.line()}"
        if state.problems:
            line += "\n" + "\n".join(f":warning: {bk.escape(p)}" for p in state.problems[:10])
            for problem in state.problems:
                if problem not in self.problems:
                    self.problems.append(problem)
        if line != self.last_line:
            self.last_line = line
            self.report(line)
        for event in self.kube.warning_events(self.namespace, since=self.since, prefix=self.release):
            key = f"{event.object_name}:{event.reason}:{event.message}"
            if key in self.seen_events:
                continue
            self.seen_events.add(key)
            self.problems.append(event.line())
            self.report(f":rotating_light: {bk.escape(event.line())}")
        return state
