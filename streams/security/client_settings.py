"""Client security settings: how a hallpass command authenticates to the broker.

They come from a properties file (``--client-properties`` / ``HALLPASS_CLIENT_PROPERTIES``:
librdkafka property names, e.g. the ``admin.properties`` that ``hallpass up --secure``
writes, or the ``client.properties`` of Java and Confluent tools, see
:mod:`streams.security.java_properties`) and from single settings (flags or
``HALLPASS_SECURITY_PROTOCOL``, ``HALLPASS_SASL_MECHANISM``, ``HALLPASS_SASL_USERNAME``,
``HALLPASS_SASL_PASSWORD_FILE``, ``HALLPASS_SSL_CA_LOCATION``), which override the file's.
A password is only ever read from a file; a file holding one must be private to its owner
(``chmod 600``), or it is refused. A SASL user without a mechanism uses SCRAM-SHA-512
(librdkafka's default would be Kerberos).

The result is a plain mapping of librdkafka properties that :class:`streams.config.Connection`
hands to every confluent-kafka client (the processor, the connectors and the vendor reader are
all confluent-kafka clients, so this one mapping reaches all of them).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.errors import HallpassError
from streams.security.java_properties import ClientFile, is_java_style, translate

ENV_CLIENT_PROPERTIES = "HALLPASS_CLIENT_PROPERTIES"
ENV_SECURITY_PROTOCOL = "HALLPASS_SECURITY_PROTOCOL"
ENV_SASL_MECHANISM = "HALLPASS_SASL_MECHANISM"
ENV_SASL_USERNAME = "HALLPASS_SASL_USERNAME"
ENV_SASL_PASSWORD_FILE = "HALLPASS_SASL_PASSWORD_FILE"  # noqa: S105 - a name
ENV_SSL_CA_LOCATION = "HALLPASS_SSL_CA_LOCATION"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_SASL_MECHANISM = "SCRAM-SHA-512"
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")

#: librdkafka properties whose values are secrets: never printed, never logged.
SECRET_KEYS = frozenset(
    {
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.truststore.password",
        "sasl.oauthbearer.client.secret",
        "sasl.jaas.config",
        "ssl.key.pem",
    }
)


class ClientSettingsError(HallpassError, ValueError):
    """The client security settings cannot be used; the message says what to do."""


#: permission bits a secret-holding file must not have: any for others, write for its group
_NOT_PRIVATE = 0o037


def check_private(path: Path, what: str) -> None:
    """Refuse a secret-holding file that others may read or write, or its group may write.

    Group read is accepted: Kubernetes mounts Secrets as 0440 (or 0640) with the pod's
    ``fsGroup``, the group of that pod's processes only."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ClientSettingsError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise ClientSettingsError(f"{what} {path} cannot be read: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise ClientSettingsError(f"{what} {path} is not a regular file")
    if mode & _NOT_PRIVATE:
        raise ClientSettingsError(
            f"{what} {path} is readable by others or writable by its group (mode "
            f"{stat.S_IMODE(mode):03o}); it holds a secret: run `chmod 600 {path}` and retry"
        )


def read_secret_file(path: Path, what: str = "password file") -> str:
    """The secret in ``path`` (first line, surrounding whitespace removed); private files
    only."""
    check_private(path, what)
    lines = path.read_text().splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ClientSettingsError(f"{what} {path} is empty")
    return secret


def parse_properties(text: str, source: str = "<properties>") -> dict[str, str]:
    """``key=value`` (or ``key: value``) lines; ``#`` and ``!`` start comments."""
    props: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        cut = [i for i in (line.find("="), line.find(":")) if i > 0]
        if not cut:
            raise ClientSettingsError(f"{source}:{number}: expected key=value")
        at = min(cut)
        props[line[:at].strip()] = line[at + 1 :].strip()
    return props


def read_properties(path: Path, what: str = "client properties file") -> dict[str, str]:
    """A private properties file (it may hold a password)."""
    check_private(path, what)
    return parse_properties(path.read_text(), str(path))


def format_properties(props: Mapping[str, str], header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    lines.extend(f"{key}={value}" for key, value in props.items())
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 600 from the first byte (atomic replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    tmp.replace(path)


def redacted(props: Mapping[str, str]) -> dict[str, str]:
    """``props`` with every secret value replaced by ``***`` (for display)."""
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in props.items()}


@dataclass(frozen=True)
class ClientSecurity:
    """The client security settings a user gave (flags, environment, properties file).

    Nothing is read until :meth:`properties` is called.
    """

    properties_file: Path | None = None
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password_file: Path | None = None
    ssl_ca_location: Path | None = None

    @property
    def given(self) -> bool:
        """Whether the user gave any setting at all."""
        return any(
            value is not None
            for value in (
                self.properties_file,
                self.security_protocol,
                self.sasl_mechanism,
                self.sasl_username,
                self.sasl_password_file,
                self.ssl_ca_location,
            )
        )

    def client_file(self) -> ClientFile | None:
        """The properties file read as a Java/Confluent ``client.properties`` (cluster and
        registry in one file), or None when there is none or it is a librdkafka file."""
        if self.properties_file is None:
            return None
        raw = read_properties(self.properties_file)
        return translate(raw, str(self.properties_file)) if is_java_style(raw) else None

    def properties(self) -> dict[str, str]:
        """The librdkafka properties: the file's, then the single settings on top."""
        props = read_properties(self.properties_file) if self.properties_file else {}
        if is_java_style(props):
            props = dict(translate(props, str(self.properties_file)).kafka)
        if self.security_protocol:
            props["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            props["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            props["sasl.username"] = self.sasl_username
        if self.sasl_password_file:
            props["sasl.password"] = read_secret_file(self.sasl_password_file)
        if self.ssl_ca_location:
            if not self.ssl_ca_location.is_file():
                raise ClientSettingsError(f"CA file {self.ssl_ca_location} does not exist")
            props["ssl.ca.location"] = str(self.ssl_ca_location)
        if "sasl.username" in props and "sasl.mechanism" not in props:
            # librdkafka would pick GSSAPI (Kerberos); hallpass's brokers speak SCRAM
            props["sasl.mechanism"] = DEFAULT_SASL_MECHANISM
        check_consistent(props)
        return props


def check_consistent(props: Mapping[str, str]) -> None:
    """Catch the settings that cannot work before a client waits on the broker for them."""
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ClientSettingsError(
            f"security.protocol {protocol!r}: use one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    mechanism = props.get("sasl.mechanism")
    if mechanism is not None and mechanism.upper() not in SASL_MECHANISMS:
        raise ClientSettingsError(
            f"sasl.mechanism {mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}"
        )
    if ("sasl.username" in props) != ("sasl.password" in props):
        missing = "sasl.password (a password file)" if "sasl.username" in props else "sasl.username"
        raise ClientSettingsError(f"a SASL username and password go together: give {missing}")
    if "sasl.username" in props and not protocol.startswith("SASL_"):
        raise ClientSettingsError(
            f"a SASL username is given but security.protocol is {protocol}: "
            "use SASL_PLAINTEXT or SASL_SSL"
        )
