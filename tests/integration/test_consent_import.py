"""`hallpass consent import` on the real bus: every row of the file on the consent topic once,
under the student's (or district's) key, the same events again when the file is imported
twice; the processor applies them like any consent event (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import Connection
from streams.kafka.names import Topics
from tests.kafka_helpers import decode_all, read_topic
from tests.processor_helpers import hallpass

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
FILE = """kind,student_id,district_id,partner,categories,effective_at,recorded_by,granted_by,\
guardian_id,signed_at,method,document_ref
grant,NY-1,NY-280201,carewell-health,special_medical;student_name,2026-09-01,nurse,guardian,\
par-5521,2026-08-28,paper,scan-0042
opt-out,NY-2,NY-280201,,,2026-09-01T08:00:00-04:00,office
district-opt-out,,NY-280201,measurely,,2026-09-01,board
"""


def test_a_consent_file_lands_on_the_consent_topic_once(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "consents.csv"
    path.write_text(FILE)
    hallpass(bus, topics, tmp_path, "contracts", "apply", "--contracts", str(CONTRACTS))
    first = hallpass(bus, topics, tmp_path, "consent", "import", str(path))
    assert "published 3 consent events" in first.stdout
    hallpass(bus, topics, tmp_path, "consent", "import", str(path))  # again: same ids
    reads = read_topic(bus, topics.consent)
    events = decode_all(bus, reads)
    assert len(events) == 6 and len({e["event_id"] for e in events}) == 3
    assert sorted({(r.key or b"").decode() for r in reads}) == ["NY-1", "NY-2", "NY-280201"]
    grant = next(e for e in events if e["kind"] == "GRANT")
    assert sorted(grant["categories"]) == ["special_medical", "student_name"]
    assert (grant["granted_by"], grant["guardian_id"], grant["method"]) == (
        "GUARDIAN",
        "par-5521",
        "PAPER",
    )
