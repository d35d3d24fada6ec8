"""``hallpass process`` as worker subprocesses, as an operator runs it: their peak resident
memory, the figures they print, the group's state, and its committed offsets over time (the
wall time from the first to the last commit across every worker of a group)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.config import Connection
from streams.kafka.names import Topics
from tests.benchmarks.dataset import PARTITIONS
from tests.eventually import eventually
from tests.processor_helpers import cli_env

_RESTORED = re.compile(
    r"restored (\d+) table records in ([\d.]+)s; busy ([\d.]+)s "
    r"\((\d+) events/s\)"
)
_PROCESSED = re.compile(r"processed (\d+) events in ([\d.]+)s")


@dataclass(frozen=True)
class WorkerSummary:
    """What ``hallpass process --until-idle`` prints when it is done."""

    restored: int
    restore_s: float
    busy_s: float
    busy_events_per_s: float
    consumed: int
    elapsed_s: float

    @classmethod
    def parse(cls, output: str) -> WorkerSummary:
        restored, processed = _RESTORED.search(output), _PROCESSED.search(output)
        if restored is None or processed is None:
            raise RuntimeError(f"no summary in the processor's output:\n{output[-3000:]}")
        return cls(
            int(restored[1]),
            float(restored[2]),
            float(restored[3]),
            float(restored[4]),
            int(processed[1]),
            float(processed[2]),
        )


class RssWatch:
    """The peak resident memory of a process, sampled every ``interval_s`` until it ends."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.peak = 0
        self._status = Path(f"/proc/{pid}/status")
        self._interval = interval_s
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                text = self._status.read_text()
            except OSError:
                return  # the process is gone
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)
            if "State:\tZ" in text:
                return
            time.sleep(self._interval)

    def join(self) -> int:
        self._thread.join(5)
        return self.peak


@dataclass
class CommitWatch:
    """Polls a group's committed offsets on ``topics`` in a thread: (monotonic time, total
    committed) at every change."""

    conn: Connection
    group: str
    topics: Sequence[str]
    interval_s: float = 0.05
    seen: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CommitWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        consumer = Consumer(
            self.conn.kafka_config(
                {
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "isolation.level": "read_uncommitted",
                }
            )
        )  # no wait on a pending transaction
        wanted = [TopicPartition(t, p) for t in self.topics for p in range(PARTITIONS)]
        try:
            while not self._stop.is_set():
                try:
                    committed = consumer.committed(wanted, timeout=10)
                except Exception:  # a coordinator move: try again
                    time.sleep(self.interval_s)
                    continue
                now = time.monotonic()
                total = sum(max(tp.offset, 0) for tp in committed)
                if total and (not self.seen or total != self.seen[-1][1]):
                    self.seen.append((now, total))
                self._stop.wait(self.interval_s)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def wait_group_stable(conn: Connection, group: str, members: int, timeout_s: float) -> None:
    """Wait until ``group`` is stable with at least ``members`` members, each assigned."""
    admin = AdminClient(conn.kafka_config())
    state: object = None

    def stable() -> bool:
        nonlocal state
        try:
            described = admin.describe_consumer_groups([group])[group].result()
        except Exception as exc:  # the group does not exist yet
            state = exc
            return False
        state = (described.state, len(described.members))
        return bool(
            described.state == ConsumerGroupState.STABLE
            and len(described.members) >= members
            and all(m.assignment.topic_partitions for m in described.members)
        )

    eventually(
        stable, timeout_s, lambda: f"the group {group} stable with {members} member(s): {state}"
    )


class WorkerProcess:
    """``hallpass process --worker N`` (no --until-idle) as a subprocess: stopped with
    SIGTERM, after which it prints its summary; output in a log file."""

    def __init__(
        self, conn: Connection, topics: Topics, data_dir: Path, args: Sequence[str], log: Path
    ) -> None:
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams",
                    "--data-dir",
                    str(data_dir),
                    "process",
                    "--metrics-port",
                    "0",
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=cli_env(conn, topics),
            )
        self.rss = RssWatch(self.proc.pid)

    def stop(self, timeout_s: float = 60.0) -> tuple[WorkerSummary, int]:
        """SIGTERM, wait; (its summary, its peak resident memory)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError(f"hallpass process did not stop:\n{self.output()}") from None
        if code != 0:
            raise RuntimeError(f"hallpass process exited with {code}:\n{self.output()}")
        return WorkerSummary.parse(self.log.read_text()), self.rss.join()

    def output(self) -> str:
        return self.log.read_text()[-3000:]


@dataclass(frozen=True)
class WorkersRun:
    summaries: list[WorkerSummary]
    rss_bytes: list[int]
    commits: list[tuple[float, int]]  #: (seconds since resumed, events committed)
    events_per_s: float  #: input events / seconds from resuming to the group's last commit


def run_workers(
    conn: Connection,
    topics: Topics,
    contracts: Path,
    secrets: Path,
    count: int,
    workdir: Path,
    feed: Callable[[], int],
    timeout_s: float = 3600.0,
) -> WorkersRun:
    """``count`` ``hallpass process --worker i`` in the group of ``topics``. Once the group is
    stable with each of them assigned, they are paused (SIGSTOP), ``feed()`` puts the input on
    the topics (returns how many events), they are resumed together (SIGCONT), and when the
    group has committed every event they are stopped (SIGTERM). Throughput: the events over
    the seconds from the resume to the group's last commit, so that neither joining the group
    nor producing the input is part of it, and no worker starts ahead of the other."""
    workers = [
        WorkerProcess(
            conn,
            topics,
            workdir,
            [
                "--contracts",
                str(contracts),
                "--partner-secrets",
                str(secrets),
                "--worker",
                str(worker),
            ],
            workdir / f"{topics.prefix}worker{worker}.log",
        )
        for worker in range(count)
    ]
    watch = CommitWatch(
        conn, topics.processor_group, [topics.changes, topics.consent], interval_s=0.02
    )
    resumed = 0.0
    try:
        wait_group_stable(conn, topics.processor_group, count, 120)
        time.sleep(0.5)  # each worker's restore after its assignment (empty state)
        for worker in workers:
            os.kill(worker.proc.pid, signal.SIGSTOP)
        expected = feed()
        watch.start()
        resumed = time.monotonic()
        for worker in workers:
            os.kill(worker.proc.pid, signal.SIGCONT)

        def all_committed() -> bool:
            if watch.seen and watch.seen[-1][1] >= expected:
                return True
            for worker in workers:
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"a worker ended early:\n{worker.output()}")
            return False

        eventually(
            all_committed,
            timeout_s,
            lambda: f"the group committed {watch.seen[-1:]} of {expected}",
            interval_s=0.05,
        )
    finally:
        watch.stop()
        for worker in workers:
            if worker.proc.poll() is None:
                os.kill(worker.proc.pid, signal.SIGCONT)
                worker.proc.terminate()
    stopped = [worker.stop() for worker in workers]
    last = watch.seen[-1][0]
    return WorkersRun(
        [s for s, _ in stopped],
        [r for _, r in stopped],
        [(t - resumed, n) for t, n in watch.seen],
        expected / max(last - resumed, 1e-3),
    )
