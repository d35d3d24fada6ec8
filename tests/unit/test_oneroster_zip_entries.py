"""OneRoster zips (issue 16, finding 7): an entry with ``..``, an absolute path or a name the
zip holds twice (in any folder, any case) would shadow ``users.csv``; such a zip is refused
with one clear error and nothing is read or published."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from connectors.oneroster.package import OneRosterPackageError
from tests.unit.test_oneroster import AVA, BEN, DATA, assert_package_error, read


def _zip(target: Path, extra: list[tuple[str, bytes]], folder: str = "") -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted((DATA / "delta").iterdir()):
            archive.write(file, f"{folder}{file.name}")
        for name, data in extra:
            # ZipFile.writestr keeps the name as given (a crafted export can hold anything)
            archive.writestr(zipfile.ZipInfo(name), data)
    return target


SHADOW = (
    b"sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
    b"givenName,familyName\n"
)


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("../users.csv", "climbs out of the package"),
        ("oneroster/../../users.csv", "climbs out of the package"),
        ("/tmp/users.csv", "absolute path"),
        ("C:/export/users.csv", "absolute path"),
        ("shadow/users.csv", "holds users.csv twice"),
        ("other/USERS.CSV", "twice"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "duplicate", "duplicate-case"],
)
def test_a_zip_whose_entries_could_shadow_a_file_is_refused(
    tmp_path: Path, name: str, phrase: str
) -> None:
    archive = _zip(tmp_path / "export.zip", [(name, SHADOW)])
    assert_package_error(archive, phrase, "export.zip")


def test_the_same_name_twice_in_one_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "twice.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _zip(archive, [("users.csv", SHADOW)])
    with pytest.raises(OneRosterPackageError, match=r"users\.csv twice"):
        read(archive)


def test_a_zip_with_one_wrapping_folder_and_no_tricks_is_still_read(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "delta.zip", [], folder="oneroster/")
    assert sorted(e.key for e in read(archive).events) == [AVA, BEN]
