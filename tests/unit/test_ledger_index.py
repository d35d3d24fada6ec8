"""The per-student ledger index (issue 19): a report from it equals one from the whole ledger,
reading a decision twice changes nothing, and the positions move with the decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.partner.ledger_index import LedgerIndex, LedgerIndexError


def decision(
    n: int, student: str, kind: str = "DISCLOSED", at: int | None = None
) -> dict[str, Any]:
    return {
        "decision_id": f"e{n}:p",
        "student_id": student,
        "decision": kind,
        "decided_at": n if at is None else at,
        "partner": "p",
        "fields": ["a"],
    }


def test_a_report_from_the_index_equals_one_from_the_ledger(tmp_path: Path) -> None:
    ledger = [
        decision(n, f"S{n % 7}", ("DISCLOSED", "RETRACTED", "WITHHELD")[n % 3]) for n in range(300)
    ]
    index = LedgerIndex(tmp_path / "index.sqlite")
    index.add(ledger[:150], {0: 150})
    index.add(ledger[100:], {0: 300})  # read again from an older position: no duplicate
    for student in ("S0", "S3", "S6"):
        expected = sorted(
            (r for r in ledger if r["student_id"] == student and r["decision"] != "WITHHELD"),
            key=lambda r: (r["decided_at"], r["decision_id"]),
        )
        assert index.report(student) == expected
    assert index.positions() == {0: 300}
    index.close()
    again = LedgerIndex(tmp_path / "index.sqlite")  # it survives a restart
    assert again.positions() == {0: 300} and len(again.report("S1")) > 0


def test_an_unusable_index_path_is_one_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerIndexError, match="--data-dir"):
        LedgerIndex(blocker / "index.sqlite")
