from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.support.wait import wait_for


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "done", timeout=5, interval=0.001) == "done"


def test_raises_with_the_message_describing_the_state_at_timeout() -> None:
    state = {"seen": 0}

    def never() -> bool:
        state["seen"] += 1
        return False

    with pytest.raises(AssertionError, match=r"still nothing after \d+ polls"):
        wait_for(never, timeout=0.1, interval=0.01, message=lambda: f"still nothing after {state['seen']} polls")


def test_listed_exceptions_mean_not_yet_and_others_propagate() -> None:
    attempts: Iterator[Exception | str] = iter([ConnectionError("down"), ConnectionError("down"), "up"])

    def probe() -> str:
        item = next(attempts)
        if isinstance(item, Exception):
            raise item
        return item

    assert wait_for(probe, timeout=5, interval=0.001, ignore=(ConnectionError,)) == "up"
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, timeout=5)
