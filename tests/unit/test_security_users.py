"""SCRAM user names and passwords are checked before anything reaches the broker."""

from __future__ import annotations

import pytest

from streams.security.users import UserAdminError, check_password, set_password, user_name


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("learnwell", "learnwell"),
        ("User:learnwell", "learnwell"),
        ("hallpass-sis", "hallpass-sis"),
        ("ops@district.example", "ops@district.example"),
    ],
)
def test_user_names_and_principals(given: str, name: str) -> None:
    assert user_name(given) == name


@pytest.mark.parametrize("bad", ["", "User:", "a,b", "a=b", "two words", "Group:x", "é"])
def test_names_scram_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(UserAdminError, match="use letters, digits"):
        user_name(bad)


def test_short_passwords_are_refused_before_the_broker_is_asked() -> None:
    with pytest.raises(UserAdminError, match="at least 12"):
        check_password("short")
    check_password("twelve-chars")
    # no broker at this address: the password check comes first
    with pytest.raises(UserAdminError, match="at least 12"):
        set_password({"bootstrap.servers": "127.0.0.1:1"}, "learnwell", "short")
