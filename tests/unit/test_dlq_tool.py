"""The selection and rendering of `hallpass dlq` (pure): which dead letters a replay takes,
and that a value that may not be text is never printed raw."""

from __future__ import annotations

import pytest

from streams.processor.dlq_tool import (
    DeadLetter,
    DlqError,
    Selection,
    find,
    render_bytes,
    render_key,
)


def letter(
    offset: int, reason: str, topic: str = "sis.student.changes", origin_offset: int = 10
) -> DeadLetter:
    return DeadLetter(0, offset, 0, b"NY-1", b"x", reason, topic, 2, origin_offset, {})


LETTERS = [
    letter(0, "undecodable: magic byte 7"),
    letter(1, "invalid: district_id is empty"),
    letter(2, "future_dated: occurred_at ...", origin_offset=12),
    letter(3, "invalid: x", topic="consent.events"),
]


def chosen(selection: Selection) -> list[int]:
    return [d.offset for d in LETTERS if selection.matches(d)]


def test_selections() -> None:
    assert chosen(Selection(reasons=("invalid",))) == [1, 3]
    assert chosen(Selection(reasons=("invalid: district",))) == [1]
    assert chosen(Selection(origins=("sis.student.changes:2:11-12",))) == [2]
    assert chosen(Selection(origins=("consent.events",))) == [3]
    assert chosen(Selection(reasons=("invalid",), origins=("sis.student.changes",))) == [1]
    assert chosen(Selection(positions=("0:2", "0:3"))) == [2, 3]
    assert chosen(Selection(everything=True)) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "bad", [{}, {"origins": ("t:x",)}, {"origins": ("t:1:2:3",)}, {"origins": (":1",)}]
)
def test_a_selection_that_says_nothing_or_cannot_be_read_is_refused(
    bad: dict[str, tuple[str, ...]],
) -> None:
    with pytest.raises(DlqError):
        Selection(**bad)  # type: ignore[arg-type]


def test_find_and_render() -> None:
    assert find(LETTERS, "0:2").reason.startswith("future_dated")
    for position in ("9:9", "x"):
        with pytest.raises(DlqError):
            find(LETTERS, position)
    assert (
        render_bytes(b"\x00SECRET" * 10) == "70 bytes: 00 53 45 43 52 45 54 00 53 45 43 52 45 "
        "54 00 53 ..."
    )
    assert render_key(b"NY-1") == "NY-1"
    assert render_key(b"\x00\xff").startswith("2 bytes: 00 ff")
