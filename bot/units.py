"""Durations and sizes as people type and read them: one parser and one formatter each, used by
every capability (silences, report windows, schedules; backup sizes, memory, disk)."""

from __future__ import annotations

import datetime as dt
import re

from bot.blocks import code
from bot.errors import UsageError

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BINARY_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def parse_duration(
    text: str,
    *,
    minimum: dt.timedelta,
    maximum: dt.timedelta,
    noun: str = "duration",
    examples: str = "`30m`, `4h`, `2d` or `1w`",
    range_message: str | None = None,
) -> dt.timedelta:
    """``90s``, ``30m``, ``4h``, ``2d``, ``1w`` (decimals allowed), within ``[minimum, maximum]``."""
    match = _DURATION.fullmatch(text.lower())
    if not match:
        raise UsageError(f"{code(text)} is not a {noun}.", hint=f"Write a number and a unit, e.g. {examples}.")
    delta = dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not minimum <= delta <= maximum:
        raise UsageError(
            range_message or f"A {noun} must be between {format_duration(minimum)} and {format_duration(maximum)}.",
            hint=f"Write e.g. {examples}.",
        )
    return delta


def format_duration(delta: dt.timedelta | float) -> str:
    """Largest two units, e.g. ``2d 4h``, ``3h 20m``, ``45s``; sub-second spans in ms."""
    seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else float(delta)
    if 0 < seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    whole = max(int(seconds), 0)  # truncated: "1h 29m" until the 90th minute is complete
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def format_bytes(value: float) -> str:
    """Binary units, as Kubernetes quantities and Milvus' own figures are: ``1.5 GiB``."""
    for unit, size in _BINARY_UNITS:
        if abs(value) >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"
