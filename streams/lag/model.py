"""Consumer-lag figures and status rules: pure data and functions, no I/O.

Lag in messages
    ``log end offset - committed offset`` of a partition, never below 0 (the two offsets are
    read one after the other, and a recreated topic can start below an old commit).

Lag in seconds
    How old the oldest unconsumed record is: ``now - t(C)``, where ``C`` is the committed
    offset (the next record the group will read) and ``t(C)`` the time that record was
    appended. ``t(C)`` is estimated one of two ways:

    * **Interpolated from samples**, as kafka-lag-exporter does. Every sampling round records
      each partition's log end offset with the wall-clock time of the sample. Between two
      consecutive samples ``(o1, t1)`` and ``(o2, t2)`` with ``o1 <= C < o2``, the records
      ``o1 .. o2-1`` were appended during ``(t1, t2]``; assuming an even rate in between, the
      record at ``C`` arrived at ``t1 + (C - o1 + 1) / (o2 - o1) * (t2 - t1)``.
      (kafka-lag-exporter interpolates at ``C - o1``; the ``+ 1`` keeps the estimate inside
      the interval in which the record must have arrived.) The error is at most the sampling
      interval, and zero for an evenly paced producer.
    * **The record's own timestamp**, when the samples do not reach back to ``C`` (one
      sample only, an exporter that just started, a group stuck for longer than the history
      holds). The collector reads the record at ``C`` (or the first one after it, when ``C``
      was compacted or deleted) and uses its Kafka timestamp: the producer's CreateTime, or
      the broker's append time on topics with ``message.timestamp.type=LogAppendTime``. A
      producer that sets old timestamps makes this figure old too. A timestamp that is a
      whole UTC day (partner topics carry the day only, so that no two partners' records
      share a time) says the record came that day: the figure is then the least age it can
      have, counted from the end of that day or from the oldest sample whose log end was
      past the record, whichever is earlier (a stopped group is still caught by its STOP or
      STALL status).

Status (in the spirit of Burrow's consumer rules), per partition over a window of samples,
the group taking the worst of its partitions:

    OK     the latest lag is 0, or the lag was 0 at some sample of the window, or nothing
           below applies
    WARN   committed offsets move but the lag grew at every interval of the window
           (at least two intervals)
    STALL  a member of the group owns the partition, yet its committed offset did not move
           over the window (at least two samples) while the lag stayed above 0
    STOP   nobody owns the partition (no active member: the consumers stopped or left) and
           its committed offset did not move since the previous sample, while lag > 0
    ERR    the group could not be described or its offsets not read
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from itertools import pairwise

from streams.kafka.names import Topics
from streams.policy.contracts import PARTNER_ID

#: (topic, partition)
TP = tuple[str, int]


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    ERR = "ERR"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.STALL: 2, Status.STOP: 3, Status.ERR: 4}
STATUSES: tuple[Status, ...] = tuple(Status)


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (OK for none)."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


# -- lag in seconds ---------------------------------------------------------------------
@dataclass(frozen=True)
class LogEndSample:
    """A partition's log end offset at a wall-clock time (unix seconds)."""

    at: float
    offset: int


LogEndHistory = tuple[LogEndSample, ...]


def add_log_end(
    history: LogEndHistory, sample: LogEndSample, max_points: int = 60
) -> LogEndHistory:
    """``history`` with ``sample`` appended, at most ``max_points`` (>= 2) of the newest.

    A run of samples with the same offset keeps only its first and its last sample: the
    first says when the log reached that offset, the last until when it stayed there; the
    ones in between change no estimate. A log end below the previous one (topic recreated,
    records deleted) or a clock that went back starts the history again.
    """
    if max_points < 2:
        raise ValueError("a history needs at least 2 points")
    if history and (sample.offset < history[-1].offset or sample.at < history[-1].at):
        return (sample,)
    points = list(history)
    if len(points) >= 2 and points[-1].offset == points[-2].offset == sample.offset:
        points[-1] = sample
    else:
        points.append(sample)
    return tuple(points[-max_points:])


def appended_at(history: Sequence[LogEndSample], offset: int) -> float | None:
    """When the record at ``offset`` was appended, interpolated between the two samples that
    enclose it; None when the samples do not reach back to it or it is beyond the last."""
    for lo, hi in pairwise(history):
        if lo.offset <= offset < hi.offset:
            fraction = (offset - lo.offset + 1) / (hi.offset - lo.offset)
            return min(hi.at, lo.at + fraction * (hi.at - lo.at))  # no rounding past hi
    return None


#: a day in seconds (record timestamps of whole days)
DAY_S = 86_400


def needs_record_time(history: Sequence[LogEndSample], committed: int, log_end: int) -> bool:
    """Whether lag in seconds needs the timestamp of the record at ``committed`` (there is
    lag, and the samples do not reach back to the committed offset)."""
    return committed < log_end and appended_at(history, committed) is None


def lag_messages(committed: int, log_end: int) -> int:
    return max(0, log_end - committed)


def lag_seconds(
    history: Sequence[LogEndSample],
    committed: int,
    log_end: int,
    now: float,
    record_time: float | None = None,
) -> float | None:
    """Age in seconds of the oldest unconsumed record (0 when there is none): interpolated
    from ``history`` when it reaches back to ``committed``, else from ``record_time`` (the
    Kafka timestamp of the record at ``committed``), else unknown (None)."""
    if committed >= log_end:
        return 0.0
    at = appended_at(history, committed)
    if at is None and record_time is not None:
        at = record_time
        if record_time % DAY_S == 0:
            # a day stamp (what partner topics carry, so that timestamps link no two
            # partners): the record came some time that day, and before the oldest sample
            # whose log end was already past it; its age is at least the time since then
            latest = record_time + DAY_S
            if history and committed < history[0].offset:
                latest = min(latest, history[0].at)
            at = latest
    if at is None:
        return None
    return max(0.0, now - at)


# -- status -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CommitSample:
    """A group's committed offset of one partition and that partition's log end, sampled
    at one time."""

    at: float
    committed: int
    log_end: int

    @property
    def lag(self) -> int:
        return lag_messages(self.committed, self.log_end)


CommitWindow = tuple[CommitSample, ...]


def add_commit(window: CommitWindow, sample: CommitSample, size: int = 10) -> CommitWindow:
    """The last ``size`` samples, ``sample`` included."""
    if size < 1:
        raise ValueError("a window holds at least 1 sample")
    if window and sample.at < window[-1].at:
        return (sample,)
    return (*window, sample)[-size:]


def partition_status(window: Sequence[CommitSample], owned: bool) -> Status:
    """Burrow-style status of one partition from its window of samples (oldest first).

    ``owned``: a member of the group is assigned the partition (or the group is
    rebalancing), i.e. someone is expected to commit.
    """
    if not window:
        return Status.OK
    latest = window[-1]
    if latest.lag == 0:
        return Status.OK
    if not owned and (len(window) == 1 or window[-2].committed == latest.committed):
        return Status.STOP
    if any(s.lag == 0 for s in window):
        return Status.OK
    moved = any(s.committed != latest.committed for s in window)
    if owned and len(window) >= 2 and not moved:
        return Status.STALL
    if moved and len(window) >= 3 and all(b.lag > a.lag for a, b in pairwise(window)):
        return Status.WARN
    return Status.OK


# -- groups, partners, selection ----------------------------------------------------------
def partner_of(topic: str, topics: Topics) -> str | None:
    """The partner whose student topic ``topic`` is (``<prefix>partner.<id>.students``)."""
    name = topic.removeprefix(topics.prefix) if topic.startswith(topics.prefix) else None
    if name is None:
        return None
    match = _PARTNER_TOPIC.fullmatch(name)
    if match is None or not PARTNER_ID.match(match.group(1)):
        return None
    return match.group(1)


_PARTNER_TOPIC = re.compile(r"partner\.([a-z0-9-]+)\.students")


def group_partner(partners: Iterable[str | None]) -> str | None:
    """A group's partner label: the partner(s) of the topics it consumes, comma-separated
    in the rare case of several, None when it consumes no partner topic."""
    found = sorted({p for p in partners if p})
    return ",".join(found) if found else None


_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class GroupSelection:
    """Which groups to report: every group, or those matching one of ``patterns``
    (exact names or shell-style wildcards)."""

    patterns: tuple[str, ...] = ()

    def matches(self, group: str) -> bool:
        return not self.patterns or any(fnmatchcase(group, p) for p in self.patterns)

    @property
    def named(self) -> tuple[str, ...]:
        """The exact names asked for: reported even when the cluster does not list them."""
        return tuple(p for p in self.patterns if not _GLOB.search(p))

    def select(self, listed: Iterable[str]) -> list[str]:
        chosen = {g for g in listed if self.matches(g)} | set(self.named)
        return sorted(chosen)


# -- the report -------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    partner: str | None
    #: None: assigned to a member but nothing committed yet
    committed: int | None
    #: None: the log end could not be read (topic deleted, partition leader unavailable)
    log_end: int | None
    lag: int | None
    lag_seconds: float | None
    status: Status
    #: member id of the owner, None when nobody owns it
    consumer: str | None = None


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str
    members: int
    status: Status
    partitions: tuple[PartitionLag, ...]
    partner: str | None = None
    error: str | None = None

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def lag_seconds(self) -> float | None:
        known = [p.lag_seconds for p in self.partitions if p.lag_seconds is not None]
        return max(known) if known else None


@dataclass(frozen=True)
class LagReport:
    """The figures of one sampling round."""

    at: float
    samples: int
    groups: tuple[GroupLag, ...]
    #: log end offsets of every partition a reported group consumes
    log_end: tuple[tuple[TP, int], ...] = ()
