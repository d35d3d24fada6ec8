"""Bulk consent intake (`hallpass consent import FILE.csv`) and ISO dates on every consent
command (issue 19): rows become consent events with stable ids, rows that cannot are rejected
with file, line, column and reason."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.source.consent_csv import ConsentFileError, read_consent_csv
from streams.cli import main
from streams.policy.consent import ConsentKind, GrantedBy, SigningMethod
from streams.policy.instants import InstantError, parse_instant

SEPT_1 = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)
GOOD = """kind,student_id,district_id,partner,categories,effective_at,expires_at,recorded_by,\
granted_by,guardian_id,signed_at,method,document_ref
grant,NY-1,NY-280201,carewell-health,special_medical;student_name,2026-09-01,2027-06-30,nurse,\
guardian,G-77,2026-08-28,paper,scan-0042
revoke,NY-2,NY-280201,carewell-health,,2026-09-01T12:00:00Z,,parent portal
opt-out,NY-3,NY-280201,,,2026-09-01T08:00:00-04:00,,office
opt-out,NY-4,NY-280201,learnwell,,1788220800000,,office
directory-opt-out,NY-5,NY-280201,,,2026-09-01,,office
district-opt-out,,NY-280201,measurely,,2026-09-01,,board
"""


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-09-01", SEPT_1),
        ("2026-09-01T00:00:00Z", SEPT_1),
        ("2026-09-01T00:00:00", SEPT_1),
        ("2026-08-31T20:00:00-04:00", SEPT_1),
        (str(SEPT_1), SEPT_1),
    ],
)
def test_times_as_people_write_them(text: str, ms: int) -> None:
    assert parse_instant(text) == ms


@pytest.mark.parametrize("text", ["next tuesday", "2026-13-01", "01/09/2026", ""])
def test_a_time_that_is_not_one_says_the_accepted_forms(text: str) -> None:
    with pytest.raises(InstantError, match="2026-09-01T08:30:00Z"):
        parse_instant(text)


def test_every_kind_of_row_becomes_its_event(tmp_path: Path) -> None:
    path = tmp_path / "consents.csv"
    path.write_text(GOOD)
    found = read_consent_csv(path)
    assert not found.rejects
    kinds = [e.kind for e in found.events]
    assert kinds == [
        ConsentKind.GRANT,
        ConsentKind.REVOKE,
        ConsentKind.ALL_OPT_OUT,
        ConsentKind.PARTNER_OPT_OUT,
        ConsentKind.DIRECTORY_OPT_OUT,
        ConsentKind.DISTRICT_OPT_OUT,
    ]
    grant = found.events[0]
    assert grant.categories == {"special_medical", "student_name"}
    assert grant.effective_at == SEPT_1 and grant.recorded_by == "nurse"
    assert grant.expires_at == int(datetime(2027, 6, 30, tzinfo=UTC).timestamp() * 1000)
    assert (grant.granted_by, grant.guardian_id, grant.method, grant.document_ref) == (
        GrantedBy.GUARDIAN,
        "G-77",
        SigningMethod.PAPER,
        "scan-0042",
    )
    assert grant.signed_at == int(datetime(2026, 8, 28, tzinfo=UTC).timestamp() * 1000)
    assert found.events[2].effective_at == SEPT_1 + 12 * 3_600_000
    # the same file read again gives the same event ids (a re-import changes nothing)
    assert [e.event_id for e in read_consent_csv(path).events] == [e.event_id for e in found.events]
    assert len({e.event_id for e in found.events}) == len(found.events)


def test_bad_rows_are_rejected_with_line_column_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "consents.csv"
    path.write_text(
        GOOD.splitlines()[0]
        + "\n"
        + "grant,NY-1,NY-280201,carewell-health,special_medicl,2026-09-01,,x\n"
        + "grant,NY-1,NY-280201,carewell-health,special_medical,soon,,x\n"
        + "shrug,NY-1,NY-280201,,,2026-09-01,,x\n"
        + "grant,NY-1,NY-280201,,special_medical,2026-09-01,,x\n"
        + "revoke,NY-9,NY-280201,learnwell,,2026-09-01,,x\n"
    )
    found = read_consent_csv(path)
    assert [(r.line, r.column) for r in found.rejects] == [
        (2, "categories"),
        (3, "effective_at"),
        (4, "kind"),
        (5, "partner"),
    ]
    assert "special_medicl" in found.rejects[0].reason
    assert [e.student_id for e in found.events] == ["NY-9"]


def test_a_grant_without_its_provenance_is_rejected_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "consents.csv"
    header = GOOD.splitlines()[0]
    path.write_text(
        header
        + "\n"
        + "grant,NY-1,NY-280201,carewell-health,special_medical,2026-09-01,,x\n"
        + "grant,NY-2,NY-280201,carewell-health,special_medical,2026-09-01,,x,guardian,,"
        "2026-08-28,portal,sub-1\n"
        + "grant,NY-3,NY-280201,carewell-health,special_medical,2026-09-01,,x,student,,"
        "2026-08-28,fax,sub-2\n"
        + "grant,NY-4,NY-280201,carewell-health,special_medical,2026-09-01,,x,student,,"
        "2026-08-28,email,sub-3\n" + "opt-out,NY-5,NY-280201,,,2026-09-01,,x\n"
    )
    found = read_consent_csv(path)
    assert [(r.line, r.column) for r in found.rejects] == [
        (2, "granted_by"),
        (3, "guardian_id"),
        (4, "method"),
    ]
    assert "granted_by, signed_at, method, document_ref missing" in found.rejects[0].reason
    assert [e.student_id for e in found.events] == ["NY-4", "NY-5"]
    assert found.events[0].granted_by is GrantedBy.ELIGIBLE_STUDENT


def test_a_file_without_the_columns_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "consents.csv"
    path.write_text("student,when\nNY-1,2026-09-01\n")
    with pytest.raises(ConsentFileError, match="unknown columns student, when"):
        read_consent_csv(path)


def test_the_cli_checks_a_file_and_writes_its_rejects(tmp_path: Path) -> None:
    path = tmp_path / "consents.csv"
    path.write_text(GOOD + "grant,NY-7,NY-280201,carewell-health,,2026-09-01,,x\n")
    result = CliRunner().invoke(main, ["consent", "import", "--dry-run", str(path)])
    assert result.exit_code == 3, result.output
    assert "checked 6 consent events" in result.output
    with (tmp_path / "consents.csv.rejects.csv").open() as f:
        [reject] = list(csv.DictReader(f))
    assert (reject["line"], reject["column"], reject["reason"]) == (
        "8",
        "categories",
        "GRANT needs at least one category",
    )
    result = CliRunner().invoke(
        main,
        [
            "consent",
            "grant",
            "--student",
            "NY-1",
            "--district",
            "D",
            "--partner",
            "learnwell",
            "--category",
            "student_name",
            "--effective-at",
            "tomorrowish",
        ],
    )
    assert result.exit_code == 2 and "2026-09-01T08:30:00Z" in result.output


GRANT = ["consent", "grant", "--student", "NY-1", "--district", "D", "--partner", "learnwell"]
PROVENANCE = ["--signed-at", "2026-08-28", "--method", "paper", "--document-ref", "scan-1"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--granted-by", "guardian", *PROVENANCE], "--guardian-id"),
        (["--granted-by", "guardian", "--guardian-id", "G-1", *PROVENANCE[2:]], "--signed-at"),
        (PROVENANCE, "--granted-by"),
    ],
)
def test_the_cli_refuses_a_grant_without_provenance_before_publishing(
    args: list[str], named: str
) -> None:
    result = CliRunner().invoke(main, [*GRANT, "--category", "student_name", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "published" not in result.output
