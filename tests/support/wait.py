"""Poll a condition until it holds, instead of sleeping and hoping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition was not met",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns something truthy and return that.

    Raises AssertionError with ``message`` (a string, or a callable so the
    message can describe the state at the moment of failure) after ``timeout``
    seconds.  Exceptions listed in ``ignore`` count as "not yet"; any other
    exception propagates at once, since a broken predicate should not look like
    a slow one.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            if last_error is not None:
                text = f"{text} (last error: {last_error!r})"
            raise AssertionError(f"{text} (waited {timeout:g}s)")
        time.sleep(interval)
