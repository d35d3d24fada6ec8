"""What goes in and out of the processor's handler, without Kafka: an input record as the
handler reads it, one output record, and where a decision came from (for the ledger)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

Headers = list[tuple[str, str | bytes | None]]
InputHeaders = Mapping[str, str | bytes | None] | list[tuple[str, str | bytes | None]]


class Message(Protocol):
    """An input record (a ``confluent_kafka.Message`` satisfies it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> InputHeaders | None: ...


@dataclass(frozen=True)
class Output:
    """One record to produce in the current transaction (``partition`` None: the producer's
    partitioner chooses)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None
    #: the Kafka record timestamp (ms); None: the producer's clock. Records a partner reads
    #: carry the day only, like their envelope times, so timestamps link no two partners.
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a decision came from: an input record, or a timer (topic ``timer``)."""

    topic: str
    partition: int
    offset: int


TIMER = Origin("timer", 0, 0)


def header(msg: Message, name: str) -> bytes | None:
    """The value of the first header ``name`` of ``msg`` (None if absent)."""
    found = msg.headers()
    pairs = found.items() if isinstance(found, Mapping) else (found or ())
    for key, value in pairs:
        if key == name:
            return value.encode() if isinstance(value, str) else value
    return None
