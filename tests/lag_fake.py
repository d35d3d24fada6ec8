"""An in-memory cluster for the lag tracker and exporter tests (no Kafka)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from streams.lag.collect import BrokerUnavailable
from streams.lag.model import TP, GroupSelection
from streams.lag.tracker import GroupObservation, RecordAt, Snapshot


@dataclass
class FakeCluster:
    """Groups and log ends a test changes between rounds; ``down`` makes it unreachable."""

    now: float = 1_000.0
    log_end: dict[TP, int] = field(default_factory=dict)
    groups: dict[str, GroupObservation] = field(default_factory=dict)
    #: Kafka timestamps of records, by (partition, offset)
    record_time: dict[RecordAt, float] = field(default_factory=dict)
    down: bool = False
    record_reads: list[list[RecordAt]] = field(default_factory=list)

    def group(
        self,
        name: str,
        committed: Mapping[TP, int],
        members: int = 0,
        owners: Mapping[TP, str] | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> None:
        self.groups[name] = GroupObservation(
            group=name,
            state=state or ("STABLE" if members else "EMPTY"),
            members=members,
            owners=dict(owners or {}),
            committed=dict(committed),
            error=error,
        )


class FakeSource:
    """What :class:`~streams.lag.collect.KafkaOffsets` does, on a :class:`FakeCluster`."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.closed = False

    def snapshot(self, selection: GroupSelection) -> Snapshot:
        c = self.cluster
        if c.down:
            raise BrokerUnavailable("cannot reach Kafka at fake:9092: Local: Timed out")
        chosen = selection.select(c.groups)
        groups = tuple(
            c.groups.get(g) or GroupObservation(g, state="DEAD", error="no such consumer group")
            for g in chosen
        )
        tps = {tp for g in groups for tp in (*g.committed, *g.owners)}
        return Snapshot(
            at=c.now, groups=groups, log_end={tp: e for tp, e in c.log_end.items() if tp in tps}
        )

    def record_times(self, wanted: Collection[RecordAt]) -> dict[RecordAt, float]:
        self.cluster.record_reads.append(sorted(wanted))
        return {w: self.cluster.record_time[w] for w in wanted if w in self.cluster.record_time}

    def close(self) -> None:
        self.closed = True
