"""The schema registry dies while the processor runs (issue 16, finding 1; ``make
test-faults``: it kills the registry's JVM, so it runs on a stack of its own, on ports
32092/32093/32081 unless HALLPASS_FAULT_PORTS=kafka,controller,registry says otherwise).

Before: the 5 opt-outs published while the registry was down were dead-lettered as
"undecodable: unknown schema id ... Connection refused", their offsets committed, and the
students stayed disclosed after the registry came back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.kafka.wire import WireEncoder
from streams.local.stack import LocalStack, Ports
from streams.policy.catalog import load_schema
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.decision import partner_key
from tests.eventually import eventually
from tests.integration.test_processor_faults import BASE, Setup, change
from tests.kafka_helpers import read_topic
from tests.processor_helpers import committed_offsets

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

STUDENTS = [f"NY-R{i:03d}" for i in range(5)]


def _ports() -> Ports:
    found = os.environ.get("HALLPASS_FAULT_PORTS", "32092,32093,32081").split(",")
    kafka, controller, registry = (int(p) for p in found)
    return Ports(kafka=kafka, controller=controller, registry=registry)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Connection]]:
    stack = LocalStack(
        tmp_path_factory.mktemp("fault-stack"),
        ports=_ports(),
        progress=lambda m: print(f"[fault stack] {m}"),
    )
    state = stack.up()
    try:
        yield stack, Connection(state.bootstrap_servers, state.schema_registry_url)
    finally:
        stack.down(quiet=True)


class Registry:
    """The stack's registry JVM: SIGKILLed, then started again exactly as it was."""

    def __init__(self, stack: LocalStack, log: Path) -> None:
        state = stack.read_state()
        assert state is not None
        self.pid, self.port, self.log = state.registry_pid, state.registry_port, log
        proc = Path(f"/proc/{self.pid}")
        self.argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        self.cwd = str((proc / "cwd").readlink())
        self.env = dict(
            line.decode().split("=", 1)
            for line in (proc / "environ").read_bytes().split(b"\0")
            if b"=" in line
        )
        self.restarted: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        eventually(lambda: not _listening(self.port), 30, lambda: "the registry still answers")

    def start(self, url: str) -> None:
        self.restarted = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        eventually(
            lambda: _answers(url), 240, lambda: "the registry did not come back", interval_s=1.0
        )

    def stop(self) -> None:
        if self.restarted is not None and self.restarted.poll() is None:
            self.restarted.terminate()
            try:
                self.restarted.wait(30)
            except subprocess.TimeoutExpired:
                self.restarted.kill()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/subjects", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_opt_outs_published_while_the_registry_is_down_are_waited_for_then_retracted(
    own_stack: tuple[LocalStack, Connection], tmp_path: Path
) -> None:
    stack, bus = own_stack
    setup = Setup(bus, tmp_path, "registry")
    registry = Registry(stack, tmp_path / "registry-again.log")
    proc: subprocess.Popen[str] | None = None
    try:
        for i, student in enumerate(STUDENTS):
            setup.produce_change(change(student, f"r-{i}"))
        assert setup.producer.flush(30) == 0
        proc = setup.start("--timer-interval", "1")
        secrets = _secrets(tmp_path)
        keys = {partner_key(s, secrets["learnwell"]).encode() for s in STUDENTS}
        eventually(
            lambda: keys <= setup.live_keys("learnwell"),
            180,
            lambda: f"not disclosed:\n{_log(tmp_path)}",
            interval_s=1.0,
        )
        # the consent schema is registered now, after the processor started: it has not seen
        # its id (the publisher's encoder caches it, as a connector's would)
        consent = WireEncoder(
            SchemaRegistryClient(bus.registry_config()),
            f"{setup.topics.consent}-value",
            load_schema("consent_changed"),
        )
        registry.kill()
        producer = Producer(bus.kafka_config({"partitioner": "murmur2_random"}))
        now = int(time.time() * 1000) - 1000
        for i, student in enumerate(STUDENTS):
            event = ConsentEvent(
                f"opt-{i}", ConsentKind.ALL_OPT_OUT, BASE["district_id"], now, student
            )
            producer.produce(
                setup.topics.consent, key=student.encode(), value=consent.encode(event.to_avro())
            )
        assert producer.flush(30) == 0
        eventually(
            lambda: "waiting for the schema registry" in _log(tmp_path),
            60,
            lambda: f"no wait logged:\n{_log(tmp_path)}",
            interval_s=0.5,
        )
        time.sleep(8)  # several backoffs
        assert proc.poll() is None, _log(tmp_path)
        assert read_topic(bus, setup.topics.changes_dlq) == []
        committed = committed_offsets(bus, setup.topics.processor_group, [setup.topics.consent])
        assert sum(committed.values()) == 0, committed
        assert keys <= setup.live_keys("learnwell")  # nothing decided meanwhile

        registry.start(bus.schema_registry_url)
        eventually(
            lambda: not keys & setup.live_keys("learnwell"),
            180,
            lambda: f"still disclosed:\n{_log(tmp_path)}",
            interval_s=1.0,
        )
        assert read_topic(bus, setup.topics.changes_dlq) == []
        assert "answers again" in _log(tmp_path)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0 and time.monotonic() - sent <= 10.0, _log(tmp_path)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if not _listening(registry.port):
            registry.start(bus.schema_registry_url)  # the module's stack goes down whole
        setup.close()
        registry.stop()


def _secrets(tmp: Path) -> dict[str, bytes]:
    import json

    found = json.loads((tmp / "partner-secrets.json").read_text())
    return {p: bytes.fromhex(v) for p, v in found.items()}


def _log(tmp: Path) -> str:
    return "\n".join(p.read_text()[-4000:] for p in sorted(tmp.glob("process-*.log")))
