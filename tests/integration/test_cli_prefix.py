"""With HALLPASS_TOPIC_PREFIX set, every command of the SIS side, the processor and the demo
use the prefixed names: what `simulate` and `publish oneroster` publish reaches `process`,
and the partner topics it writes are the prefixed ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.config import Connection
from streams.kafka.names import Topics
from tests.processor_helpers import cli_env, count_records, hallpass

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
PARTNERS = ("carewell-health", "learnwell", "measurely")


def test_simulate_and_process_use_the_prefixed_topics(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    assert topics.prefix
    hallpass(bus, topics, tmp_path, "contracts", "apply", "--contracts", str(CONTRACTS))
    out = tmp_path / "oneroster"
    simulated = hallpass(
        bus,
        topics,
        tmp_path,
        "simulate",
        "--students",
        "80",
        "--days",
        "2",
        "--districts",
        "2",
        "--oneroster-out",
        str(out),
    )
    published = int(re.search(r"published (\d+) events", simulated.stdout)[1])  # type: ignore[index]
    assert topics.changes in simulated.stdout and topics.consent in simulated.stdout
    assert (
        count_records(bus, topics.changes, "read_committed")
        + count_records(bus, topics.consent, "read_committed")
        == published
    )

    hallpass(bus, topics, tmp_path, "publish", "oneroster", str(out))
    changes = count_records(bus, topics.changes, "read_committed")
    assert changes > published - count_records(bus, topics.consent, "read_committed")

    processed = hallpass(
        bus, topics, tmp_path, "process", "--until-idle", "--contracts", str(CONTRACTS)
    )
    assert re.search(r"processed [1-9]\d* events", processed.stdout), processed.stdout
    on_partner_topics = {
        p: count_records(bus, topics.partner(p), "read_committed") for p in PARTNERS
    }
    assert any(on_partner_topics.values()), on_partner_topics


def test_demo_uses_the_prefix_the_contracts_and_the_secrets_of_the_environment(
    bus: Connection,
    topics: Topics,
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    secrets = tmp_path / "elsewhere" / "secrets.json"
    env = {
        **cli_env(bus, topics),
        "HALLPASS_CONTRACTS_DIR": str(CONTRACTS),
        "HALLPASS_PARTNER_SECRETS_FILE": str(secrets),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "--data-dir",
            str(tmp_path / "data"),
            "demo",
            "--students",
            "60",
            "--days",
            "2",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert secrets.is_file()
    assert not (tmp_path / "data" / "partner-secrets.json").exists()
    assert topics.changes in result.stdout
    assert any(count_records(bus, topics.partner(p), "read_committed") for p in PARTNERS)
