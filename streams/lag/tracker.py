"""Sample history between sampling rounds, and the report of each round (no I/O here).

One round: the collector takes a :class:`Snapshot` of the cluster (groups, committed
offsets, log ends); :meth:`LagTracker.observe` adds it to the histories;
:meth:`LagTracker.record_times_needed` names the records whose timestamps the history cannot
replace; :meth:`LagTracker.report` turns it all into figures and statuses.
:class:`LagSampler` runs that sequence against any :class:`OffsetSource`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from streams.kafka.names import Topics
from streams.lag.model import (
    TP,
    CommitSample,
    CommitWindow,
    GroupLag,
    GroupSelection,
    LagReport,
    LogEndHistory,
    LogEndSample,
    PartitionLag,
    Status,
    add_commit,
    add_log_end,
    group_partner,
    lag_messages,
    lag_seconds,
    needs_record_time,
    partition_status,
    partner_of,
    worst,
)

#: a record wanted for its timestamp: (topic, partition) and offset
RecordAt = tuple[TP, int]


@dataclass(frozen=True)
class GroupObservation:
    """What the cluster said about one group in one round."""

    group: str
    #: ConsumerGroupState name: STABLE, EMPTY, PREPARING_REBALANCING, DEAD, ...
    state: str = "UNKNOWN"
    members: int = 0
    #: partition -> member id of the member it is assigned to
    owners: Mapping[TP, str] = field(default_factory=dict)
    #: partition -> committed offset (partitions without a commit are absent)
    committed: Mapping[TP, int] = field(default_factory=dict)
    #: why the group could not be described or its offsets not read
    error: str | None = None

    @property
    def rebalancing(self) -> bool:
        return self.state in ("PREPARING_REBALANCING", "COMPLETING_REBALANCING")

    def owned(self, tp: TP) -> bool:
        return tp in self.owners or (self.members > 0 and self.rebalancing)


@dataclass(frozen=True)
class Snapshot:
    """One round's observations; ``at`` is the wall-clock time the log ends were read."""

    at: float
    groups: tuple[GroupObservation, ...]
    log_end: Mapping[TP, int]


class OffsetSource(Protocol):
    """Where a round's figures come from (the cluster, or a fake in tests)."""

    def snapshot(self, selection: GroupSelection) -> Snapshot: ...

    def record_times(self, wanted: Collection[RecordAt]) -> dict[RecordAt, float]:
        """Kafka timestamp (unix seconds) of the record at each offset, or of the first
        record after it; records that cannot be read are left out."""
        ...

    def close(self) -> None: ...


class LagTracker:
    """Log-end histories per partition and commit windows per group and partition."""

    def __init__(self, topics: Topics, window: int = 10, history_points: int = 60) -> None:
        self.topics = topics
        self.window = window
        self.history_points = history_points
        self.rounds = 0
        self._log_end: dict[TP, LogEndHistory] = {}
        self._commits: dict[tuple[str, TP], CommitWindow] = {}

    def history(self, tp: TP) -> LogEndHistory:
        return self._log_end.get(tp, ())

    def observe(self, snapshot: Snapshot) -> None:
        """Add one round (call once per snapshot, before its report)."""
        self.rounds += 1
        for tp, offset in snapshot.log_end.items():
            self._log_end[tp] = add_log_end(
                self.history(tp), LogEndSample(snapshot.at, offset), self.history_points
            )
        seen: set[tuple[str, TP]] = set()
        consumed: set[TP] = set(snapshot.log_end)
        for obs in snapshot.groups:
            if obs.error is not None and not obs.committed:
                # nothing learnt this round: keep what we knew
                seen.update(k for k in self._commits if k[0] == obs.group)
                consumed.update(tp for (g, tp) in self._commits if g == obs.group)
                continue
            for tp, committed in obs.committed.items():
                log_end = snapshot.log_end.get(tp)
                consumed.add(tp)
                key = (obs.group, tp)
                seen.add(key)
                if log_end is not None:
                    self._commits[key] = add_commit(
                        self._commits.get(key, ()),
                        CommitSample(snapshot.at, committed, log_end),
                        self.window,
                    )
        # forget groups and partitions no longer reported
        self._commits = {k: w for k, w in self._commits.items() if k in seen}
        self._log_end = {tp: h for tp, h in self._log_end.items() if tp in consumed}

    def record_times_needed(self, snapshot: Snapshot) -> set[RecordAt]:
        """Committed offsets with lag whose age the history cannot tell."""
        wanted: set[RecordAt] = set()
        for obs in snapshot.groups:
            for tp, committed in obs.committed.items():
                log_end = snapshot.log_end.get(tp)
                if log_end is not None and needs_record_time(self.history(tp), committed, log_end):
                    wanted.add((tp, committed))
        return wanted

    def report(
        self, snapshot: Snapshot, record_times: Mapping[RecordAt, float] | None = None
    ) -> LagReport:
        times = record_times or {}
        groups = tuple(self._group(obs, snapshot, times) for obs in snapshot.groups)
        return LagReport(
            at=snapshot.at,
            samples=self.rounds,
            groups=groups,
            log_end=tuple(sorted(snapshot.log_end.items())),
        )

    def _group(
        self, obs: GroupObservation, snapshot: Snapshot, times: Mapping[RecordAt, float]
    ) -> GroupLag:
        partitions: list[PartitionLag] = []
        for tp in sorted(set(obs.committed) | set(obs.owners)):
            topic, partition = tp
            committed = obs.committed.get(tp)
            log_end = snapshot.log_end.get(tp)
            lag: int | None = None
            seconds: float | None = None
            status = Status.OK
            if committed is not None and log_end is not None:
                lag = lag_messages(committed, log_end)
                seconds = lag_seconds(
                    self.history(tp), committed, log_end, snapshot.at, times.get((tp, committed))
                )
                status = partition_status(self._commits.get((obs.group, tp), ()), obs.owned(tp))
            partitions.append(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    partner=partner_of(topic, self.topics),
                    committed=committed,
                    log_end=log_end,
                    lag=lag,
                    lag_seconds=seconds,
                    status=status,
                    consumer=obs.owners.get(tp),
                )
            )
        status = Status.ERR if obs.error else worst(p.status for p in partitions)
        return GroupLag(
            group=obs.group,
            state=obs.state,
            members=obs.members,
            status=status,
            partitions=tuple(partitions),
            partner=group_partner(p.partner for p in partitions),
            error=obs.error,
        )


class LagSampler:
    """Rounds of sampling, the history kept across rounds (and across a new source after a
    reconnect); record timestamps are read once per committed offset and remembered while
    that offset stays committed."""

    def __init__(self, tracker: LagTracker) -> None:
        self.tracker = tracker
        self._times: dict[RecordAt, float] = {}

    def sample(self, source: OffsetSource, selection: GroupSelection) -> LagReport:
        snapshot = source.snapshot(selection)
        self.tracker.observe(snapshot)
        wanted = self.tracker.record_times_needed(snapshot)
        missing = [w for w in sorted(wanted) if w not in self._times]
        if missing:
            self._times.update(source.record_times(missing))
        self._times = {w: t for w, t in self._times.items() if w in wanted}
        return self.tracker.report(snapshot, self._times)
