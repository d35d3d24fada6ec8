"""What every part of the local stack raises for a problem a user can fix, and how it
reports progress."""

from __future__ import annotations

from collections.abc import Callable

from streams.errors import HallpassError

Progress = Callable[[str], None]


class RuntimeProblem(HallpassError, RuntimeError):
    """Something in the environment stops the local runtime; the message says what to do."""
