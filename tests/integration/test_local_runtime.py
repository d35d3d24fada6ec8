"""`hallpass up` / `down` / `status` as a user runs them, on a stack of their own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY

pytestmark = pytest.mark.kafka

# below the ephemeral port range (32768-60999): a client socket never holds them
PORTS = ["--kafka-port", "31092", "--controller-port", "31093", "--registry-port", "31081"]


def hallpass(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k not in (ENV_BOOTSTRAP, ENV_REGISTRY)}
    run_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "streams", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env,
        check=False,
    )


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("own-stack")
    started = hallpass(data_dir, "up", *PORTS)
    assert started.returncode == 0, started.stderr
    yield data_dir
    hallpass(data_dir, "down")


def _status(data_dir: Path) -> dict[str, object]:
    out = hallpass(data_dir, "status", "--json")
    assert out.returncode == 0, out.stderr
    parsed: dict[str, object] = json.loads(out.stdout)
    return parsed


def test_status_json_names_the_bus(own_stack: Path) -> None:
    status = _status(own_stack)
    assert status["running"] is True
    assert status["bootstrap_servers"] == "127.0.0.1:31092"
    assert status["schema_registry_url"] == "http://127.0.0.1:31081/apis/ccompat/v7"


def test_second_up_says_it_already_runs(own_stack: Path) -> None:
    again = hallpass(own_stack, "up", *PORTS)
    assert again.returncode == 1
    assert "already running" in again.stderr and "hallpass down" in again.stderr


def test_port_taken_is_reported(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = hallpass(
            tmp_path,
            "up",
            "--kafka-port",
            str(port),
            "--controller-port",
            "31193",
            "--registry-port",
            "31181",
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "already in use" in result.stderr


def test_data_survives_down_and_up(own_stack: Path) -> None:
    bootstrap = "127.0.0.1:31092"
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce("t.survives", key=b"NY-1", value=b"still here after a restart")
    assert producer.flush(30) == 0

    stopped = hallpass(own_stack, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert _status(own_stack)["running"] is False
    restarted = hallpass(own_stack, "up", *PORTS)
    assert restarted.returncode == 0, restarted.stderr

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "t-survives", "enable.auto.commit": False}
    )
    found = []
    for partition in range(3):
        tp = TopicPartition("t.survives", partition, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=30)
        if high > low:
            consumer.assign([tp])
            msg = consumer.poll(30)
            assert msg is not None and not msg.error()
            found.append(msg.value())
    consumer.close()
    assert found == [b"still here after a restart"]


def test_down_with_nothing_running(tmp_path: Path) -> None:
    result = hallpass(tmp_path, "down")
    assert result.returncode == 1
    assert "nothing is running" in result.stderr and "hallpass up" in result.stderr


def test_data_dir_of_another_cluster_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "meta.properties").write_text(
        "version=1\ncluster.id=SomeOtherClusterId0000\nnode.id=1\n"
    )
    (tmp_path / "cluster.id").write_text("ThisClusterId000000000\n")
    result = hallpass(
        tmp_path,
        "up",
        "--kafka-port",
        "31292",
        "--controller-port",
        "31293",
        "--registry-port",
        "31281",
    )
    assert result.returncode == 1
    assert "another cluster" in result.stderr and "SomeOtherClusterId0000" in result.stderr


def test_unreachable_maven_is_explained(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    mvn = fake_bin / "mvn"
    mvn.write_text(
        "#!/bin/sh\necho '[ERROR] Could not transfer artifact: Unknown host' >&2\nexit 1\n"
    )
    mvn.chmod(0o755)
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "HALLPASS_CACHE_DIR": str(tmp_path / "c")}
    result = hallpass(
        tmp_path / "data",
        "up",
        "--kafka-port",
        "31392",
        "--controller-port",
        "31393",
        "--registry-port",
        "31381",
        env=env,
    )
    assert result.returncode == 1
    assert "Maven could not fetch Apache Kafka" in result.stderr
    assert "Unknown host" in result.stderr


def test_external_cluster_means_up_starts_nothing(tmp_path: Path) -> None:
    env = {ENV_BOOTSTRAP: "broker.example:9092", ENV_REGISTRY: "http://registry.example:8081"}
    result = hallpass(tmp_path, "up", env=env)
    assert result.returncode == 0
    assert "starting nothing" in result.stdout
    assert not (tmp_path / "kafka").exists()


def test_cluster_id_starting_with_a_dash_formats(tmp_path: Path, bus: object) -> None:
    """A random cluster id may start with "-"; the storage tool must not read it as a flag."""
    from streams.local.artifacts import find_java, kafka_classpath
    from streams.local.stack import LocalStack

    stack = LocalStack(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    stack.cluster_id_file.write_text("-dashFirstClusterId0Aw\n")
    classpath, _ = kafka_classpath(os.environ, lambda _m: None)
    java = find_java(os.environ, 17, "Kafka")
    assert stack._format_storage(java, classpath) == "-dashFirstClusterId0Aw"
    meta = (tmp_path / "kafka" / "meta.properties").read_text()
    assert "cluster.id=-dashFirstClusterId0Aw" in meta
