"""Secure mode: the stack's credentials (SCRAM users, registry users), the local CA and
TLS certificates, and the registry's Kafka and HTTP security settings."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.local.errors import Progress, RuntimeProblem
from streams.security.acl_plan import (
    DEFAULT_ROLES,
    REGISTRY_EVENTS_TOPIC,
    REGISTRY_GROUP_PREFIX,
    REGISTRY_JOURNAL_TOPIC,
    REGISTRY_SNAPSHOTS_TOPIC,
)
from streams.security.client_settings import (
    write_private,
)

# ---------------------------------------------------------------------------------------------
# Secure mode: credentials, TLS, the registry's client


SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
ADMIN_USER = DEFAULT_ROLES.admin.removeprefix("User:")
REGISTRY_USER = DEFAULT_ROLES.registry.removeprefix("User:")
#: the broker's own principal (inter-broker and controller traffic), a super user
BROKER_USER = "hallpass-broker"
SECRETS_FILE = "security.json"
ADMIN_PROPERTIES_FILE = "admin.properties"
REGISTRY_CONFIG_FILE = "registry.properties"
#: the registry's HTTP users (basic authentication, Quarkus embedded users): hallpass's own
#: commands register schemas; the reader (vendors, auditors) may only read them
REGISTRY_API_USER = "hallpass"
REGISTRY_READER_USER = "hallpass-reader"
REGISTRY_USER_INFO_FILE = "registry.user-info"
REGISTRY_READER_USER_INFO_FILE = "registry-reader.user-info"
TLS_DIR = "tls"


@dataclass(frozen=True)
class StackSecrets:
    """The passwords a secure data dir was formatted with (``security.json``, mode 600)."""

    admin_password: str
    broker_password: str
    registry_password: str
    #: passwords of the registry's HTTP users (data dirs formatted before they existed get
    #: them at the next ``up``)
    registry_api_password: str = ""
    registry_reader_password: str = ""

    @classmethod
    def generate(cls) -> StackSecrets:
        return cls(*(secrets.token_urlsafe(32) for _ in range(5)))

    def completed(self) -> StackSecrets:
        """These secrets with the registry's HTTP passwords made if they are missing."""
        return StackSecrets(
            self.admin_password,
            self.broker_password,
            self.registry_password,
            self.registry_api_password or secrets.token_urlsafe(32),
            self.registry_reader_password or secrets.token_urlsafe(32),
        )

    def values(self) -> tuple[str, ...]:
        return tuple(
            v
            for v in (
                self.admin_password,
                self.broker_password,
                self.registry_password,
                self.registry_api_password,
                self.registry_reader_password,
            )
            if v
        )

    def redact(self, text: str) -> str:
        """``text`` with every password of the stack replaced by ``***``."""
        for value in self.values():
            text = text.replace(value, "***")
        return text


def scram_format_args(stack_secrets: StackSecrets) -> list[str]:
    """``kafka-storage format`` arguments that create the stack's SCRAM credentials."""
    users = (
        (ADMIN_USER, stack_secrets.admin_password),
        (BROKER_USER, stack_secrets.broker_password),
        (REGISTRY_USER, stack_secrets.registry_password),
    )
    args: list[str] = []
    for name, password in users:
        args += [
            "--add-scram",
            f"{SCRAM_MECHANISM}=[name={name},iterations={SCRAM_ITERATIONS},password={password}]",
        ]
    return args


def java_argfile(args: Iterable[str]) -> str:
    """A ``java @file`` argument file: one quoted argument a line. The JVM reads arguments
    from it, so secrets among them never show on the process's command line."""
    return "".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"\n' for a in args)


def admin_client_properties(stack_secrets: StackSecrets, ca_file: Path | None) -> dict[str, str]:
    """The admin's librdkafka client settings (``admin.properties``)."""
    props = {
        "security.protocol": "SASL_SSL" if ca_file else "SASL_PLAINTEXT",
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": ADMIN_USER,
        "sasl.password": stack_secrets.admin_password,
    }
    if ca_file:
        props["ssl.ca.location"] = str(ca_file)
    return props


def registry_http_config(stack_secrets: StackSecrets, tls_dir: Path | None) -> dict[str, str]:
    """Apicurio's HTTP security on the secure stack, with Quarkus's own mechanisms (Apicurio 3's
    authentication needs an OpenID Connect server; Quarkus basic authentication with embedded
    users does not): every request needs a registry user, reads need the reader or writer
    role, everything else (registering schemas, changing compatibility) the writer role.
    With TLS the API is HTTPS only, with the broker's certificate of the local CA."""
    config = {
        "quarkus.http.auth.basic": "true",
        "quarkus.security.users.embedded.enabled": "true",
        "quarkus.security.users.embedded.plain-text": "true",
        f"quarkus.security.users.embedded.users.{REGISTRY_API_USER}": (
            stack_secrets.registry_api_password
        ),
        f"quarkus.security.users.embedded.roles.{REGISTRY_API_USER}": "registry-writer",
        f"quarkus.security.users.embedded.users.{REGISTRY_READER_USER}": (
            stack_secrets.registry_reader_password
        ),
        f"quarkus.security.users.embedded.roles.{REGISTRY_READER_USER}": "registry-reader",
        "quarkus.http.auth.policy.registry-read.roles-allowed": "registry-reader,registry-writer",
        "quarkus.http.auth.policy.registry-write.roles-allowed": "registry-writer",
        "quarkus.http.auth.permission.read.paths": "/*",
        "quarkus.http.auth.permission.read.methods": "GET,HEAD",
        "quarkus.http.auth.permission.read.policy": "registry-read",
        "quarkus.http.auth.permission.write.paths": "/*",
        "quarkus.http.auth.permission.write.policy": "registry-write",
    }
    if tls_dir is not None:
        key_and_chain = str(tls_dir / "broker.pem")
        config["quarkus.http.ssl.certificate.files"] = key_and_chain
        config["quarkus.http.ssl.certificate.key-files"] = key_and_chain
        config["quarkus.http.insecure-requests"] = "disabled"
    return config


def registry_kafka_config(stack_secrets: StackSecrets, ca_file: Path | None) -> dict[str, str]:
    """Apicurio's Kafka client settings for KafkaSQL storage as ``User:hallpass-registry``.

    ``apicurio.kafka.common.*`` passes through to its producers, consumers and admin client
    (Apicurio 3's ``apicurio.kafkasql.security.sasl.*`` settings are for OAuth only). The
    storage names are set explicitly, the same names its ACLs are granted on.
    """
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{REGISTRY_USER}" password="{stack_secrets.registry_password}";'
    )
    config = {
        "apicurio.kafkasql.topic": REGISTRY_JOURNAL_TOPIC,
        "apicurio.kafkasql.snapshots.topic": REGISTRY_SNAPSHOTS_TOPIC,
        "apicurio.events.kafka.topic": REGISTRY_EVENTS_TOPIC,
        "apicurio.kafkasql.consumer.group-prefix": REGISTRY_GROUP_PREFIX,
        "apicurio.kafka.common.security.protocol": "SASL_SSL" if ca_file else "SASL_PLAINTEXT",
        "apicurio.kafka.common.sasl.mechanism": SCRAM_MECHANISM,
        "apicurio.kafka.common.sasl.jaas.config": jaas,
    }
    if ca_file:
        config["apicurio.kafka.common.ssl.truststore.type"] = "PEM"
        config["apicurio.kafka.common.ssl.truststore.location"] = str(ca_file)
    return config


_BROKER_CERT_EXTENSIONS = """\
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
"""


def ensure_local_ca(tls_dir: Path, progress: Progress) -> Path:
    """A local CA and a broker certificate for 127.0.0.1 signed by it (PEM, made once with
    openssl); returns the CA certificate clients trust (``ssl.ca.location``)."""
    ca_cert, ca_key = tls_dir / "ca.pem", tls_dir / "ca.key"
    broker_pem = tls_dir / "broker.pem"
    if ca_cert.is_file() and ca_key.is_file() and broker_pem.is_file():
        return ca_cert
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeProblem(
            "--tls needs openssl to make the local CA and the broker's certificate: install it "
            "(`apt-get install openssl`), or leave out --tls"
        )
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)  # the private keys below are created with openssl's default mode
    progress(f"making a local CA and a broker certificate in {tls_dir} ...")

    def run(*args: str) -> None:
        result = subprocess.run(
            [openssl, *args], capture_output=True, text=True, check=False, cwd=tls_dir
        )
        if result.returncode != 0:
            raise RuntimeProblem(f"openssl {args[0]} failed:\n{result.stderr.strip()}")

    if not (ca_cert.is_file() and ca_key.is_file()):
        run(
            "req",
            "-x509",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=hallpass local CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
    (tls_dir / "broker.ext").write_text(_BROKER_CERT_EXTENSIONS)
    run(
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        str(secrets.randbits(63)),
        "-sha256",
        "-days",
        "825",
        "-extfile",
        "broker.ext",
        "-out",
        "broker.crt",
    )
    # Kafka's PEM key store: the (unencrypted PKCS#8) key, then the certificate chain
    write_private(
        broker_pem,
        (tls_dir / "broker.key").read_text()
        + (tls_dir / "broker.crt").read_text()
        + ca_cert.read_text(),
    )
    for leftover in ("broker.key", "broker.csr", "broker.ext"):
        (tls_dir / leftover).unlink()
    for private in (ca_key, broker_pem):
        private.chmod(0o600)
    return ca_cert
