"""Dead letters: bad input as values, not crashes, with a limit that halts a broken deploy."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from streams.errors import HallpassError
from streams.kafka.names import CHANGES_DLQ

DLQ_TOPIC = CHANGES_DLQ


@dataclass(frozen=True)
class InvalidMessage:
    """One input message that could not be processed, with where it came from."""

    topic: str
    partition: int
    offset: int
    reason: str
    key: bytes | None
    value: bytes | None

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return [
            ("hallpass.dlq.reason", self.reason.encode()),
            ("hallpass.dlq.topic", self.topic.encode()),
            ("hallpass.dlq.partition", str(self.partition).encode()),
            ("hallpass.dlq.offset", str(self.offset).encode()),
        ]


class TooManyInvalidError(HallpassError, RuntimeError):
    """Most recent events are invalid: stop instead of dead-lettering everything."""


@dataclass
class DlqLimit:
    """Halts when more than ``max_ratio`` of the last ``window`` events were invalid (once at
    least ``min_seen`` events were seen), or after ``max_consecutive`` invalid in a row."""

    window: int = 200
    max_ratio: float = 0.5
    min_seen: int = 50
    max_consecutive: int = 500

    def __post_init__(self) -> None:
        self._recent: deque[bool] = deque(maxlen=self.window)
        self._invalid_in_window = 0
        self._consecutive = 0

    def record(self, valid: bool, last: InvalidMessage | None = None) -> None:
        if len(self._recent) == self._recent.maxlen and not self._recent[0]:
            self._invalid_in_window -= 1
        self._recent.append(valid)
        if valid:
            self._consecutive = 0
            return
        self._invalid_in_window += 1
        self._consecutive += 1
        seen = len(self._recent)
        too_many = seen >= self.min_seen and self._invalid_in_window > self.max_ratio * seen
        if too_many or self._consecutive >= self.max_consecutive:
            where = (
                f" (last: {last.topic}[{last.partition}]@{last.offset}: {last.reason})"
                if last
                else ""
            )
            raise TooManyInvalidError(
                f"{self._invalid_in_window} of the last {seen} events were invalid{where}. "
                "Upstream looks broken (a bad deploy of an SIS connector?): fix the producer, "
                f"then restart; the invalid events are in {DLQ_TOPIC}. Nothing after the last "
                "committed event was processed."
            )
