"""OneRoster rows at the door (issue 16, finding 5): a name over 256 characters, a date
outside 1900-01-01 .. today + 2 years, an id with a control character are rejected with file,
line, field and reason (never the value); the other rows are read as before."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_oneroster import AVA, BEN, copy_package, read


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_rows_over_the_input_limits_are_rejected_and_name_the_field(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    long_name = "Benedict" * 40  # 320 characters
    _edit(package / "users.csv", ",Ben,Okafor,", f",{long_name},Okafor,")
    _edit(package / "demographics.csv", "usr-stu-1,,,2013-04-17,", "usr-stu-1,,,1850-04-17,")
    result = read(package)
    messages = [r.message for r in result.rejects]
    assert "users.csv:3:givenName: is longer than 256 characters" in messages
    assert "demographics.csv:2:birthDate: is before 1900-01-01" in messages
    assert not [m for m in messages if "Benedict" in m or "1850" in m]
    assert BEN not in {e.key for e in result.events}


def test_an_id_with_a_control_character_is_rejected(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    _edit(package / "users.csv", "usr-stu-2,,,true,ben", "usr-stu-2\x01,,,true,ben")
    _edit(package / "users.csv", "{stateID:1234567890}", "{stateID:12345\x0767890}")
    messages = [r.message for r in read(package).rejects]
    assert "users.csv:3:sourcedId: contains a control character" in messages
    assert "users.csv:2:userIds: an id contains a control character" in messages


def test_a_date_two_years_ahead_is_read_one_more_day_is_not(tmp_path: Path) -> None:
    import datetime as dt

    from streams.policy.input_limits import latest_date

    last = latest_date(dt.date.today())
    package = copy_package("bulk", tmp_path)
    _edit(
        package / "demographics.csv", "usr-stu-1,,,2013-04-17,", f"usr-stu-1,,,{last.isoformat()},"
    )
    assert AVA in {e.key for e in read(package).events}
    package = copy_package("bulk", tmp_path / "later")
    _edit(
        package / "demographics.csv",
        "usr-stu-1,,,2013-04-17,",
        f"usr-stu-1,,,{(last + dt.timedelta(days=1)).isoformat()},",
    )
    assert "demographics.csv:2:birthDate: is more than 2 years ahead" in [
        r.message for r in read(package).rejects
    ]
