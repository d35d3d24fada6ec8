"""Ed-Fi students at the door (issue 16, finding 5): a name over 256 characters or a birth
date before 1900 rejects the student with the field and the rule, never the value; the other
students are read as before."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_edfi import load, read


def test_a_student_over_the_input_limits_is_rejected_and_the_others_read(tmp_path: Path) -> None:
    path = load(tmp_path)
    xml = path / "Student.xml"
    text = xml.read_text(encoding="utf-8")
    text = text.replace(
        "<FirstName>Alejandra</FirstName>", f"<FirstName>{'Alejandra' * 40}</FirstName>", 1
    )
    xml.write_text(text, encoding="utf-8")
    events, result, _ = read(path)
    messages = [r.message for r in result.rejects]
    assert (
        "*:0:Student: student '605231': names.first_name is longer than 256 characters" in messages
    )
    assert not [m for m in messages if "AlejandraAlejandra" in m]
    assert "605231" not in events and len(events) == 9


def test_a_birth_date_before_1900_is_rejected(tmp_path: Path) -> None:
    path = load(tmp_path)
    xml = path / "Student.xml"
    text = xml.read_text(encoding="utf-8")
    old = (
        "<FirstName>Alejandra</FirstName>\n\t\t\t<LastSurname>Walls</LastSurname>\n\t\t"
        "</Name>\n\t\t<BirthData>\n\t\t\t<BirthDate>2013-07-25</BirthDate>"
    )
    assert old in text
    xml.write_text(text.replace(old, old.replace("2013-07-25", "1850-07-25")), encoding="utf-8")
    events, result, _ = read(path)
    assert "*:0:Student: student '605231': demographics.birth_date is before 1900-01-01" in [
        r.message for r in result.rejects
    ]
    assert "605231" not in events
