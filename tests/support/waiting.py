"""Polling a real server or file until something holds, with a deadline instead of a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """The first truthy value of `condition()`; exceptions in `tolerate` count as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except tolerate:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not reached in {timeout} s")
