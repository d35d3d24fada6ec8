"""Waiting in tests: the one way to poll until something holds, with a deadline and a failure
that says what did not happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None],
    timeout_s: float,
    what: str | Callable[[], str],
    *,
    interval_s: float = 0.1,
) -> T:
    """Call ``check`` until it returns something other than None or False, and return that.

    ``check`` runs at least once, then every ``interval_s`` (0: again at once, for a check
    that itself waits, such as a consumer's poll) until ``timeout_s`` have passed; then an
    AssertionError says how long it waited and ``what`` did not happen (a function: called
    then, so that it can tell the latest state or a process's output).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"not within {timeout_s:g}s: {said}")
        if interval_s > 0:
            time.sleep(interval_s)
