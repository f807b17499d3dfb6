"""Waiting for the kernel or the engine to get somewhere, without timed assertions.

A test asserts that a state is reached (a container restarted, a process gone);
how long it took is not the test's business, so the deadline is generous and
only bounds a failure.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, step: float = 0.05) -> T:
    """Call ``predicate`` every ``step`` seconds until it returns something true or
    ``timeout`` seconds have passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
