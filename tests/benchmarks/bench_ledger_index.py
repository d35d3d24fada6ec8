"""A parent's report over 1,000,000 ledger records (issue 19): the per-student index against
the full scan the report used to do, in the same run (`make bench`, or
`python -m tests.benchmarks.bench_ledger_index`)."""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connectors.partner.ledger_index import LedgerIndex

RECORDS = 1_000_000
STUDENTS = 20_000  # 50 decisions per student on average: a year of changes and consents


def ledger(n: int, seed: int = 19) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "decision_id": f"e{i}:p{i % 3}",
            "student_id": f"NY-{rng.randrange(STUDENTS)}",
            "decision": "DISCLOSED" if i % 5 else "RETRACTED",
            "decided_at": i,
            "partner": f"p{i % 3}",
            "fields": ["names.first_name", "enrollment.grade_level"],
            "categories": ["student_name"],
            "legal_basis": ["school_official"],
            "contract_version": 1,
        }
        for i in range(n)
    ]


def main() -> None:
    records = ledger(RECORDS)
    encoded = [json.dumps(r) for r in records]  # what a scan decodes, cheaper than Avro
    student = records[RECORDS // 2]["student_id"]
    with tempfile.TemporaryDirectory() as tmp:
        index = LedgerIndex(Path(tmp) / "index.sqlite")
        started = time.perf_counter()
        for start in range(0, RECORDS, 50_000):
            index.add(records[start : start + 50_000], {0: start + 50_000})
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        report = index.report(student)
        report_s = time.perf_counter() - started
        index.close()
    started = time.perf_counter()
    scanned = [r for r in map(json.loads, encoded) if r["student_id"] == student]
    scan_s = time.perf_counter() - started
    assert len(scanned) == len([r for r in records if r["student_id"] == student])
    print(
        json.dumps(
            {
                "records": RECORDS,
                "student_decisions": len(report),
                "index_build_s": round(build_s, 2),
                "report_s": round(report_s, 4),
                "full_scan_s": round(scan_s, 2),
                "scan_over_report": round(scan_s / max(report_s, 1e-9)),
            },
            indent=2,
        )
    )
    sys.exit(0 if report_s < 1.0 else 1)


if __name__ == "__main__":
    main()
