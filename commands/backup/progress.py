"""Progress lines and throughput of long backup work, readable for a 40 KB backup and a 400 GB one."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.units import format_bytes, format_duration

Progress = Callable[[str], None]


def no_progress(text: str) -> None:
    return None


def took(seconds: float) -> str:
    """``0.4 s`` for quick work (``0 s`` said nothing), ``12.5 s``, then ``3m 20s`` from a minute on."""
    return f"{seconds:,.1f} s" if seconds < 60 else format_duration(seconds)


def rate(nbytes: float, seconds: float) -> str:
    """Bytes per second in the unit that fits (``47.0 KiB/s`` rather than ``0.0 MB/s``)."""
    return f"{format_bytes(nbytes / max(seconds, 1e-3))}/s"


class Meter:
    """Rows and bytes done, with a throttled progress line."""

    def __init__(self, progress: Progress, total_rows: int, every_s: float = 2.0, verb: str = "rows") -> None:
        self.progress = progress
        self.total_rows = total_rows
        self.every_s = every_s
        self.verb = verb
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._last = 0.0

    def add(self, rows: int, nbytes: int, label: str = "") -> None:
        self.rows += rows
        self.bytes += nbytes
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self.progress(self.line(label))

    @property
    def elapsed(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9)

    def line(self, label: str = "") -> str:
        where = f"{label}: " if label else ""
        per_s = self.rows / max(self.elapsed, 1e-3)
        return (f"{where}{self.verb} {self.rows:,} of {self.total_rows:,} "
                f"({rate(self.bytes, self.elapsed)}, {per_s:,.0f} rows/s)")
