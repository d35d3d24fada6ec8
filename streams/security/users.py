"""SCRAM-SHA-512 credentials of the broker's principals (``hallpass users``).

A credential is set with the admin client (``AlterUserScramCredentials``): the client salts
and hashes the password, the broker stores only the salted form. Passwords come from files
of mode 600, never from a command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclOperation,
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from streams.errors import HallpassError
from streams.security.acl_apply import AclApplyError, cluster_operations

MECHANISM = ScramMechanism.SCRAM_SHA_512
MECHANISM_NAME = "SCRAM-SHA-512"
#: Kafka's default is 4096; twice that costs a client a few milliseconds once per connection
ITERATIONS = 8192
MIN_PASSWORD_LENGTH = 12
#: SCRAM user names: no ',' or '=' (SCRAM escapes them, some clients do not)
_USER_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,200}$")


class UserAdminError(HallpassError, RuntimeError):
    """A credential could not be set or removed; the message says what to do."""


def user_name(name: str) -> str:
    """The SCRAM user name of ``name`` (``learnwell`` or the principal ``User:learnwell``)."""
    bare = name.removeprefix("User:")
    if not _USER_NAME.match(bare):
        raise UserAdminError(
            f"user name {name!r}: use letters, digits, '.', '_', '@' or '-' (the principal is "
            f"User:<name>)"
        )
    return bare


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserAdminError(
            f"the password is {len(password)} characters long: use at least "
            f"{MIN_PASSWORD_LENGTH} (e.g. `openssl rand -base64 24 > FILE; chmod 600 FILE`)"
        )


def _explain(exc: KafkaException, user: str, doing: str) -> UserAdminError:
    err: Any = exc.args[0] if exc.args else None
    name = err.name() if hasattr(err, "name") else ""
    if name == "CLUSTER_AUTHORIZATION_FAILED":
        return UserAdminError(
            f"{doing} {user}: not authorized; only a super user (the admin) manages "
            "credentials, e.g. --client-properties <data dir>/admin.properties"
        )
    if name == "RESOURCE_NOT_FOUND":
        return UserAdminError(f"{doing} {user}: {user} has no {MECHANISM_NAME} credential")
    if name == "UNSUPPORTED_SASL_MECHANISM":
        return UserAdminError(f"{doing} {user}: the broker does not support {MECHANISM_NAME}")
    return UserAdminError(f"{doing} {user}: {err.str() if hasattr(err, 'str') else exc}")


def _admin(admin_config: Mapping[str, Any], operation: Any, doing: str) -> AdminClient:
    """An admin client whose principal may do ``operation`` on the cluster (checked first:
    confluent-kafka 2.16 crashes on an unauthorized DescribeUserScramCredentials answer)."""
    admin = AdminClient(dict(admin_config))
    try:
        allowed, _ = cluster_operations(admin)
    except AclApplyError as exc:
        raise UserAdminError(f"{doing}: {exc}") from exc
    if operation not in allowed:
        raise UserAdminError(
            f"{doing}: not authorized; only a super user (the admin) manages credentials, "
            "e.g. --client-properties <data dir>/admin.properties"
        )
    return admin


def set_password(
    admin_config: Mapping[str, Any], name: str, password: str, timeout_s: float = 30.0
) -> str:
    """Create or replace ``name``'s SCRAM-SHA-512 credential; returns the user name."""
    user = user_name(name)
    check_password(password)
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(MECHANISM, ITERATIONS), password.encode()
    )
    admin = _admin(admin_config, AclOperation.ALTER, f"setting the credential of {user}")
    futures = admin.alter_user_scram_credentials([upsert], request_timeout=timeout_s)
    try:
        futures[user].result()
    except KafkaException as exc:
        raise _explain(exc, user, "setting the credential of") from exc
    return user


def remove_user(admin_config: Mapping[str, Any], name: str, timeout_s: float = 30.0) -> str:
    """Delete ``name``'s SCRAM-SHA-512 credential (its ACLs are `acl apply`'s business)."""
    user = user_name(name)
    admin = _admin(admin_config, AclOperation.ALTER, f"removing {user}")
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion(user, MECHANISM)], request_timeout=timeout_s
    )
    try:
        futures[user].result()
    except KafkaException as exc:
        raise _explain(exc, user, "removing") from exc
    return user


def list_users(admin_config: Mapping[str, Any], timeout_s: float = 30.0) -> dict[str, list[str]]:
    """Every user with a SCRAM credential -> its mechanisms."""
    admin = _admin(admin_config, AclOperation.DESCRIBE, "listing the users")
    future: Any = admin.describe_user_scram_credentials(request_timeout=timeout_s)
    try:
        described: dict[str, Any] = future.result()
    except KafkaException as exc:
        raise _explain(exc, "users", "listing") from exc
    return {
        user: sorted(info.mechanism.name.replace("_", "-") for info in desc.scram_credential_infos)
        for user, desc in sorted(described.items())
    }
