"""The secure stack of the partner-isolation tests: ``hallpass up --secure --tls`` on ports of
its own (below the ephemeral range), in a temporary data dir, once per test session.

``secure_stack`` is the bare stack (only the admin exists); ``secure_bus`` adds a SCRAM user
for every role and every vendor of deploy/contracts, applies the contracts (topics, view
schemas) and the ACL plan, and hands out each principal's client properties. Every hallpass
command the tests run goes through :meth:`SecureStack.hallpass`, which keeps its output, and
the tests sample the process list, so that a test can check that no password shows in any of
them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY, Connection
from streams.kafka.names import ENV_TOPIC_PREFIX
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import load_contracts
from streams.security.acl_plan import DEFAULT_ROLES
from streams.security.client_settings import (
    ENV_CLIENT_PROPERTIES,
    format_properties,
    read_properties,
    write_private,
)

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
#: below the ephemeral port range (32768-60999): a client socket never holds them
SECURE_PORTS = {"kafka": 30192, "controller": 30193, "registry": 30181}


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a hallpass run on the secure stack: no external cluster, no topic
    prefix, no client settings of the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (ENV_BOOTSTRAP, ENV_REGISTRY, ENV_TOPIC_PREFIX)
        and not k.startswith(
            (
                "HALLPASS_SASL",
                "HALLPASS_SECURITY",
                "HALLPASS_SSL",
                "HALLPASS_SCHEMA_REGISTRY_",
                ENV_CLIENT_PROPERTIES,
            )
        )
    }
    env.update(extra or {})
    return env


def process_list() -> str:
    """Every process's full command line (what any user of the machine can see)."""
    return subprocess.run(
        ["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True
    ).stdout


@dataclass
class SecureStack:
    data_dir: Path
    bootstrap: str
    registry_url: str
    secrets_dir: Path
    #: stdout and stderr of every hallpass command run on this stack
    transcript: list[str] = field(default_factory=list)
    #: process lists sampled while hallpass processes ran
    ps_samples: list[str] = field(default_factory=list)
    #: every password a principal of this stack has
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def admin_properties(self) -> Path:
        return self.data_dir / "admin.properties"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def registry_reader(self) -> Path:
        """The registry's read-only credentials (``user:password``) that vendors get."""
        return self.data_dir / "registry-reader.user-info"

    @property
    def registry_writer(self) -> Path:
        """hallpass's own registry credentials."""
        return self.data_dir / "registry.user-info"

    def hallpass(
        self,
        *args: str,
        client_properties: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """``hallpass --data-dir <stack> ARGS`` as a user runs it; with ``client_properties``
        as that principal (through HALLPASS_CLIENT_PROPERTIES), else as the admin."""
        extra = dict(env or {})
        if client_properties is not None:
            extra[ENV_CLIENT_PROPERTIES] = str(client_properties)
        result = subprocess.run(
            [sys.executable, "-m", "streams", "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(extra),
            check=False,
            cwd=REPO,
        )
        self.transcript.append(f"$ hallpass {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        if check:
            assert result.returncode == 0, (
                f"hallpass {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def popen(self, *args: str, client_properties: Path, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "streams", "--data-dir", str(self.data_dir), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=_clean_env({ENV_CLIENT_PROPERTIES: str(client_properties)}),
            )

    def client_properties(self, user: str, password: str, name: str | None = None) -> Path:
        """A mode-600 client properties file of ``user`` (SASL_SSL, SCRAM-SHA-512)."""
        path = self.secrets_dir / f"{name or user}.properties"
        write_private(
            path,
            format_properties(
                {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": user,
                    "sasl.password": password,
                    "ssl.ca.location": str(self.ca_file),
                }
            ),
        )
        return path

    def connection(self, properties: Path | None = None) -> Connection:
        """The stack as the principal of ``properties`` (default: the admin)."""
        return Connection(
            self.bootstrap, self.registry_url, read_properties(properties or self.admin_properties)
        )

    def stack_passwords(self) -> dict[str, str]:
        """The passwords ``up`` generated (admin, broker, registry) and the users'."""
        generated = json.loads((self.data_dir / "security.json").read_text())
        return {**{f"stack:{k}": str(v) for k, v in generated.items()}, **self.passwords}


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    data_dir = tmp_path_factory.mktemp("hallpass-secure")
    secrets_dir = tmp_path_factory.mktemp("hallpass-secure-principals")
    stack = SecureStack(
        data_dir=data_dir,
        secrets_dir=secrets_dir,
        bootstrap=f"127.0.0.1:{SECURE_PORTS['kafka']}",
        registry_url=f"https://127.0.0.1:{SECURE_PORTS['registry']}/apis/ccompat/v7",
    )
    stack.hallpass(
        "up",
        "--secure",
        "--tls",
        "--kafka-port",
        str(SECURE_PORTS["kafka"]),
        "--controller-port",
        str(SECURE_PORTS["controller"]),
        "--registry-port",
        str(SECURE_PORTS["registry"]),
        timeout=420,
    )
    stack.ps_samples.append(process_list())  # the broker's and the registry's JVMs
    try:
        yield stack
    finally:
        stack.hallpass("down", check=False)


@dataclass
class SecureBus:
    """The secure stack with every principal of the plan, the contracts and the ACLs."""

    stack: SecureStack
    #: principal name (SCRAM user) -> its client properties file
    properties: dict[str, Path]

    def role(self, principal: str) -> Path:
        return self.properties[principal.removeprefix("User:")]


def add_user(stack: SecureStack, user: str) -> Path:
    """A SCRAM user with a random password (``hallpass users add``); its client properties."""
    password = secrets.token_urlsafe(24)
    password_file = stack.secrets_dir / f"{user}.password"
    write_private(password_file, password + "\n")
    stack.passwords[user] = password
    stack.hallpass("users", "add", user, "--password-file", str(password_file))
    return stack.client_properties(user, password)


@pytest.fixture(scope="session")
def secure_bus(secure_stack: SecureStack) -> SecureBus:
    contracts = load_contracts(CONTRACTS, field_catalog(load_schema("student_record_changed")))
    principals = [
        DEFAULT_ROLES.sis_connector,
        DEFAULT_ROLES.consent_source,
        DEFAULT_ROLES.processor,
        DEFAULT_ROLES.auditor,
        *(c.principal for c in contracts),
    ]
    properties = {
        p.removeprefix("User:"): add_user(secure_stack, p.removeprefix("User:")) for p in principals
    }
    secure_stack.hallpass("contracts", "apply", "--contracts", str(CONTRACTS))
    secure_stack.hallpass("acl", "apply", "--contracts", str(CONTRACTS))
    return SecureBus(secure_stack, properties)
