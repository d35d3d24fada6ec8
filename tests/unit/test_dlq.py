"""The dead-letter limit: isolated bad events pass, a broken upstream halts."""

from __future__ import annotations

import pytest

from streams.processor.dlq import DlqLimit, InvalidMessage, TooManyInvalidError


def _bad(offset: int) -> InvalidMessage:
    return InvalidMessage(
        "sis.student.changes", 2, offset, "undecodable: magic byte 7", b"NY-1", b"\x07junk"
    )


def test_isolated_invalid_events_do_not_halt() -> None:
    limit = DlqLimit(window=100, max_ratio=0.5, min_seen=20)
    for offset in range(1000):
        limit.record(offset % 10 != 0, _bad(offset))  # 10% invalid


def test_mostly_invalid_recent_events_halt_with_a_clear_message() -> None:
    limit = DlqLimit(window=100, max_ratio=0.5, min_seen=20)
    for _ in range(50):
        limit.record(True)
    with pytest.raises(TooManyInvalidError) as halted:
        for offset in range(50, 200):
            limit.record(False, _bad(offset))
    message = str(halted.value)
    assert "sis.student.changes[2]@" in message and "sis.student.changes.dlq" in message
    assert "fix the producer" in message


def test_consecutive_invalid_halt_even_with_a_long_good_history() -> None:
    limit = DlqLimit(window=10_000, max_ratio=0.9, min_seen=50, max_consecutive=30)
    for _ in range(5000):
        limit.record(True)
    for offset in range(29):
        limit.record(False, _bad(offset))
    with pytest.raises(TooManyInvalidError):
        limit.record(False, _bad(29))


def test_dead_letter_headers_name_reason_and_origin() -> None:
    headers = dict(_bad(41).headers())
    assert headers == {
        "hallpass.dlq.reason": b"undecodable: magic byte 7",
        "hallpass.dlq.topic": b"sis.student.changes",
        "hallpass.dlq.partition": b"2",
        "hallpass.dlq.offset": b"41",
    }
