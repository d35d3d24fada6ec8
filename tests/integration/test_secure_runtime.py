"""`hallpass up --secure` as a user meets it: where the admin's settings are, how commands
pick their principal, what is refused, a restart, and that no password leaks into a log, a
process list or a help text. The last test scans everything the secure tests produced."""

from __future__ import annotations

import json
import shutil
import ssl
import stat
from pathlib import Path

import httpx
import pytest

from streams.config import ENV_REGISTRY_USER_INFO_FILE
from streams.security.client_settings import (
    ENV_SASL_PASSWORD_FILE,
    ENV_SASL_USERNAME,
    ENV_SECURITY_PROTOCOL,
    ENV_SSL_CA_LOCATION,
    read_properties,
    write_private,
)
from tests.integration.conftest import SECURE_PORTS, SecureBus, SecureStack, process_list

pytestmark = pytest.mark.kafka

PORT_ARGS = [
    "--kafka-port",
    str(SECURE_PORTS["kafka"]),
    "--controller-port",
    str(SECURE_PORTS["controller"]),
    "--registry-port",
    str(SECURE_PORTS["registry"]),
]


def status(stack: SecureStack) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(stack.hallpass("status", "--json").stdout)
    return parsed


def test_status_names_the_admin_properties(secure_stack: SecureStack) -> None:
    info = status(secure_stack)
    assert info["running"] is True and info["secure"] is True and info["tls"] is True
    assert info["admin_properties"] == str(secure_stack.admin_properties)
    assert stat.S_IMODE(secure_stack.admin_properties.stat().st_mode) == 0o600
    props = read_properties(secure_stack.admin_properties)
    assert set(props) == {
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
    }
    assert (props["security.protocol"], props["sasl.mechanism"], props["sasl.username"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "admin",
    )
    assert props["ssl.ca.location"] == str(secure_stack.ca_file)
    assert stat.S_IMODE(secure_stack.data_dir.stat().st_mode) == 0o700


def test_local_commands_run_as_the_admin_by_themselves(secure_stack: SecureStack) -> None:
    listed = secure_stack.hallpass("users", "list").stdout
    for user in ("admin", "hallpass-broker", "hallpass-registry"):
        assert f"User:{user} " in listed


def test_a_readable_client_properties_file_is_refused(
    secure_bus: SecureBus, tmp_path: Path
) -> None:
    readable = tmp_path / "learnwell.properties"
    shutil.copy(secure_bus.properties["learnwell"], readable)
    readable.chmod(0o644)
    result = secure_bus.stack.hallpass(
        "--client-properties", str(readable), "users", "list", check=False
    )
    assert result.returncode == 1
    assert f"chmod 600 {readable}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_readable_password_file_is_refused(secure_stack: SecureStack, tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("a-long-enough-password\n")
    password.chmod(0o644)
    added = secure_stack.hallpass(
        "users", "add", "someone", "--password-file", str(password), check=False
    )
    assert added.returncode == 1 and f"chmod 600 {password}" in added.stderr
    as_env = secure_stack.hallpass(
        "users",
        "list",
        check=False,
        env={
            ENV_SECURITY_PROTOCOL: "SASL_SSL",
            ENV_SASL_USERNAME: "admin",
            ENV_SASL_PASSWORD_FILE: str(password),
            ENV_SSL_CA_LOCATION: str(secure_stack.ca_file),
        },
    )
    assert as_env.returncode == 1 and f"chmod 600 {password}" in as_env.stderr


def test_single_settings_from_the_environment(secure_stack: SecureStack, tmp_path: Path) -> None:
    admin_password = read_properties(secure_stack.admin_properties)["sasl.password"]
    password = tmp_path / "admin.pw"
    write_private(password, admin_password + "\n")
    env = {
        ENV_SECURITY_PROTOCOL: "SASL_SSL",
        ENV_SASL_USERNAME: "admin",
        ENV_SASL_PASSWORD_FILE: str(password),
        ENV_SSL_CA_LOCATION: str(secure_stack.ca_file),
    }
    assert "User:admin" in secure_stack.hallpass("users", "list", env=env).stdout


def test_a_vendor_cannot_manage_acls_or_users(secure_bus: SecureBus) -> None:
    vendor = secure_bus.properties["learnwell"]
    applied = secure_bus.stack.hallpass("acl", "apply", client_properties=vendor, check=False)
    assert applied.returncode == 1 and "not authorized" in applied.stderr
    listed = secure_bus.stack.hallpass("users", "list", client_properties=vendor, check=False)
    assert listed.returncode == 1 and "not authorized" in listed.stderr


def test_secure_on_a_plaintext_data_dir_is_refused(
    secure_stack: SecureStack, tmp_path: Path
) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "meta.properties").write_text(
        "version=1\ncluster.id=PlainClusterId00000000\nnode.id=1\n"
    )
    (tmp_path / "cluster.id").write_text("PlainClusterId00000000\n")
    other = SecureStack(
        tmp_path,
        secure_stack.bootstrap,
        secure_stack.registry_url,
        secure_stack.secrets_dir,
        secure_stack.transcript,
    )
    result = other.hallpass(
        "up",
        "--secure",
        "--kafka-port",
        "30292",
        "--controller-port",
        "30293",
        "--registry-port",
        "30281",
        check=False,
    )
    assert result.returncode == 1
    assert "formatted without --secure" in result.stderr and "--data-dir" in result.stderr
    assert not (tmp_path / "admin.properties").exists()


def test_help_texts_hold_no_secret(secure_bus: SecureBus) -> None:
    for args in (
        ["--help"],
        ["up", "--help"],
        ["users", "add", "--help"],
        ["acl", "apply", "--help"],
        ["status"],
    ):
        secure_bus.stack.hallpass(*args)
    # checked with everything else by the last test of this module


def test_restart_keeps_credentials_data_and_security(secure_bus: SecureBus, tmp_path: Path) -> None:
    """A data dir formatted secure comes back secure even without --secure (here without
    TLS), with the same users; then it is restarted as the other tests expect it."""
    stack = secure_bus.stack
    stack.hallpass("down")
    restarted = stack.hallpass("up", *PORT_ARGS)
    assert "formatted with --secure" in restarted.stderr
    props = read_properties(stack.admin_properties)
    assert props["security.protocol"] == "SASL_PLAINTEXT" and "ssl.ca.location" not in props
    vendor = dict(read_properties(secure_bus.properties["learnwell"]))
    vendor["security.protocol"] = "SASL_PLAINTEXT"
    del vendor["ssl.ca.location"]
    plain = tmp_path / "learnwell-plain.properties"
    write_private(plain, "".join(f"{k}={v}\n" for k, v in vendor.items()))
    listed = stack.hallpass(
        "--client-properties",
        str(plain),
        "vendor",
        "pull",
        "--partner",
        "learnwell",
        "--group",
        "learnwell-restart",
        "--copy",
        str(tmp_path / "copy.sqlite"),
        "--show",
        "0",
    )
    assert "local copy holds" in listed.stdout
    stack.ps_samples.append(process_list())
    stack.hallpass("down")
    stack.hallpass("up", "--secure", "--tls", *PORT_ARGS)
    assert status(stack)["tls"] is True


def test_no_password_in_any_log_or_process_list(secure_bus: SecureBus) -> None:
    """Runs last: the logs of the broker and the registry, every hallpass command's output
    and the process lists sampled during the tests hold no password of any principal."""
    stack = secure_bus.stack
    stack.ps_samples.append(process_list())
    logs = {
        str(p): p.read_text(errors="replace")
        for p in (stack.data_dir / "logs").iterdir()
        if p.is_file()
    }
    assert any("broker.log" in name for name in logs) and any(
        "registry.log" in name for name in logs
    )
    seen = "\n".join(stack.ps_samples)
    assert "kafka.Kafka" in seen and "quarkus-run.jar" in seen
    corpus = {**logs, "hallpass output": "\n".join(stack.transcript), "ps": seen}
    passwords = stack.stack_passwords()
    assert len(passwords) >= 3 + 5
    leaks = [
        (who, where)
        for who, password in passwords.items()
        for where, text in corpus.items()
        if password in text
    ]
    assert leaks == []


def test_the_registry_takes_only_its_users_on_https(secure_bus: SecureBus) -> None:
    """The secure stack's schema registry: HTTPS only (the local CA), every request with a
    registry user; vendors' read-only user reads view schemas and may not register one."""
    stack = secure_bus.stack
    url = stack.registry_url
    tls = ssl.create_default_context(cafile=str(stack.ca_file))
    reader_name, reader_password = stack.registry_reader.read_text().strip().split(":", 1)
    writer_name, writer_password = stack.registry_writer.read_text().strip().split(":", 1)
    reader, writer = (reader_name, reader_password), (writer_name, writer_password)
    for path in (stack.registry_reader, stack.registry_writer):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    subject = "partner.learnwell.students-value"
    foreign = {"schema": json.dumps({"type": "record", "name": "Foreign", "fields": []})}
    with httpx.Client(verify=tls, timeout=10) as client:
        assert client.get(f"{url}/subjects").status_code == 401
        assert (
            client.get(f"{url}/subjects", auth=(reader[0], "not-the-password")).status_code == 401
        )
        assert client.post(f"{url}/subjects/{subject}/versions", json=foreign).status_code == 401
        listed = client.get(f"{url}/subjects", auth=reader)
        assert listed.status_code == 200 and subject in listed.json()
        assert (
            client.post(f"{url}/subjects/{subject}/versions", json=foreign, auth=reader).status_code
            == 403
        )
        assert (
            client.put(f"{url}/config", json={"compatibility": "NONE"}, auth=reader).status_code
            == 403
        )
        assert client.get(f"{url}/config", auth=writer).status_code == 200
    plain = url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/subjects", auth=writer, timeout=5)


def test_a_command_without_registry_credentials_is_refused_and_told_why(
    secure_stack: SecureStack, tmp_path: Path
) -> None:
    """`roundtrip` registers a schema: with guessed credentials, with the read-only ones and
    with a readable credentials file it is refused in one line that names the setting."""
    stranger = tmp_path / "stranger.user-info"
    write_private(stranger, "hallpass-reader:guessed\n")
    readable = tmp_path / "readable.user-info"
    readable.write_text(secure_stack.registry_reader.read_text())
    readable.chmod(0o644)
    cases = {
        stranger: "did not accept the credentials (HTTP 401)",
        secure_stack.registry_reader: "does not allow this action",
        readable: "chmod 600",
    }
    for credentials, said in cases.items():
        refused = secure_stack.hallpass(
            "roundtrip", check=False, env={ENV_REGISTRY_USER_INFO_FILE: str(credentials)}
        )
        assert refused.returncode == 1, refused.stdout
        assert said in refused.stderr and ENV_REGISTRY_USER_INFO_FILE in refused.stderr
        assert "Traceback" not in refused.stderr and "guessed" not in refused.stderr
    assert secure_stack.hallpass("roundtrip").returncode == 0  # its own credentials
