"""A local stack of a test's own (`hallpass up` in a temporary data dir, on ports of its
own), driven as a user drives it: up, down, status, and SIGKILLs of its JVMs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY, Connection
from streams.kafka.names import ENV_TOPIC_PREFIX
from streams.local.processes import pid_alive

#: the fault tests' ports (below the ephemeral range 32768-60999): Kafka and the KRaft
#: controllers 32300-32305 (broker n on 32300 + 2(n-1), its controller one above), the
#: registry 32381 and its management interface 32382
KAFKA_PORT, CONTROLLER_PORT, REGISTRY_PORT = 32300, 32301, 32381
PORT_ARGS = (
    "--kafka-port",
    str(KAFKA_PORT),
    "--controller-port",
    str(CONTROLLER_PORT),
    "--registry-port",
    str(REGISTRY_PORT),
)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without an external cluster or a topic prefix."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (ENV_BOOTSTRAP, ENV_REGISTRY, ENV_TOPIC_PREFIX)
    }
    env.update(extra or {})
    return env


@dataclass
class OwnStack:
    data_dir: Path

    def hallpass(
        self, *args: str, timeout: float = 420, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams", "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(env),
            check=False,
        )

    def up(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.hallpass("up", *PORT_ARGS, *args)
        assert result.returncode == 0, f"hallpass up failed:\n{result.stdout}{result.stderr}"
        return result

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.hallpass("down", timeout=180)

    def status(self) -> dict[str, Any]:
        result = self.hallpass("status", "--json", timeout=60)
        assert result.returncode == 0, result.stderr
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    @property
    def conn(self) -> Connection:
        status = self.status()
        return Connection(str(status["bootstrap_servers"]), str(status["schema_registry_url"]))

    def broker_pid(self, node: int) -> int:
        return int(next(b["pid"] for b in self.status()["brokers"] if b["id"] == node))

    def kill_broker(self, node: int) -> int:
        pid = self.broker_pid(node)
        sigkill(pid)
        return pid

    def kill_registry(self) -> int:
        pid = int(self.status()["registry"]["pid"])
        sigkill(pid)
        return pid


def sigkill(pid: int, timeout_s: float = 30.0) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.05)


def leaders(conn: Connection, topic: str) -> dict[int, int]:
    """partition -> the broker id leading it."""
    meta = AdminClient(conn.kafka_config()).list_topics(topic, timeout=30).topics[topic]
    return {p: part.leader for p, part in meta.partitions.items()}


def wait_fully_replicated(conn: Connection, timeout_s: float = 180.0) -> None:
    """Until every partition of every topic has all its replicas in sync (a restarted
    broker has caught up), so that the next broker may go down without blocking writes."""
    admin = AdminClient(conn.kafka_config())
    deadline = time.monotonic() + timeout_s
    lagging: list[str] = []
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=30).topics
        lagging = [
            f"{t}/{p}"
            for t, meta in topics.items()
            for p, part in meta.partitions.items()
            if part.leader < 0 or len(part.isrs) < len(part.replicas)
        ]
        if not lagging:
            return
        time.sleep(1.0)
    raise AssertionError(f"not fully replicated within {timeout_s}s: {lagging[:10]}")
