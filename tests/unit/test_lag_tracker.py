"""Rounds of sampling on an in-memory cluster: figures, statuses, which record timestamps are
read (and how often), history kept and forgotten."""

from __future__ import annotations

import pytest

from streams.kafka.names import Topics
from streams.lag.model import GroupLag, GroupSelection, LagReport, Status
from streams.lag.tracker import LagSampler, LagTracker
from tests.lag_fake import FakeCluster, FakeSource

T = "orders"
P0, P1, P2 = (T, 0), (T, 1), (T, 2)
ALL = GroupSelection()


def rig(prefix: str = "", window: int = 10) -> tuple[FakeCluster, FakeSource, LagSampler]:
    cluster = FakeCluster()
    return cluster, FakeSource(cluster), LagSampler(LagTracker(Topics(prefix), window=window))


def only(report: LagReport, group: str) -> GroupLag:
    (found,) = [g for g in report.groups if g.group == group]
    return found


def test_one_round_of_a_stopped_group() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 40, P1: 50, P2: 60}
    cluster.group("g", {P0: 40, P1: 20, P2: 0})
    cluster.record_time = {(P1, 20): 400.0, (P2, 0): 100.0}
    g = only(sampler.sample(source, ALL), "g")
    assert [(p.partition, p.committed, p.log_end, p.lag) for p in g.partitions] == [
        (0, 40, 40, 0),
        (1, 20, 50, 30),
        (2, 0, 60, 60),
    ]
    # one sample: the age comes from the timestamp of the record at the committed offset
    assert [p.lag_seconds for p in g.partitions] == [0.0, 600.0, 900.0]
    assert cluster.record_reads == [[(P1, 20), (P2, 0)]]  # only the lagging partitions
    assert g.status is Status.STOP and g.lag == 90 and g.lag_seconds == 900.0
    assert [p.status for p in g.partitions] == [Status.OK, Status.STOP, Status.STOP]


def test_record_timestamps_are_read_once_per_committed_offset() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 10}
    cluster.group("g", {P0: 4})
    cluster.record_time = {(P0, 4): 900.0, (P0, 6): 950.0}
    sampler.sample(source, ALL)
    cluster.now += 10
    sampler.sample(source, ALL)  # same committed offset, same log end: remembered
    assert cluster.record_reads == [[(P0, 4)]]
    cluster.now += 10
    cluster.group("g", {P0: 6})
    report = sampler.sample(source, ALL)
    assert cluster.record_reads == [[(P0, 4)], [(P0, 6)]]
    assert only(report, "g").partitions[0].lag_seconds == pytest.approx(1020.0 - 950.0)


def test_lag_seconds_interpolated_once_the_history_reaches_back() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 100}
    cluster.group("g", {P0: 100}, members=1, owners={P0: "m-1"})
    sampler.sample(source, ALL)
    cluster.now, cluster.log_end = 1_010.0, {P0: 200}
    cluster.group("g", {P0: 149}, members=1, owners={P0: "m-1"})
    report = sampler.sample(source, ALL)
    part = only(report, "g").partitions[0]
    # records 100..199 arrived during (1000, 1010]: the one at 149 around 1005
    assert part.lag == 51 and part.lag_seconds == pytest.approx(5.0)
    assert part.consumer == "m-1"
    assert cluster.record_reads == []  # the samples sufficed


def test_stall_warn_and_recovery_over_rounds() -> None:
    cluster, source, sampler = rig(window=3)
    owners = {P0: "m-1"}

    def round_(committed: int, log_end: int) -> Status:
        cluster.now += 10
        cluster.log_end = {P0: log_end}
        cluster.group("g", {P0: committed}, members=1, owners=owners)
        cluster.record_time[(P0, committed)] = cluster.now - 1
        return only(sampler.sample(source, ALL), "g").status

    assert round_(10, 20) is Status.OK  # one sample: cannot tell yet
    assert round_(10, 25) is Status.STALL  # owned, offsets still, lag > 0
    assert round_(12, 24) is Status.OK  # moving again, lag shrinking
    assert round_(14, 30) is Status.OK  # lag 15, 12, 16: not growing at every interval
    assert round_(16, 40) is Status.WARN  # lag 12, 16, 24: growing at every interval
    assert round_(40, 40) is Status.OK


def test_group_errors_and_unknown_groups_are_err() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 5}
    cluster.group("broken", {}, error="cannot describe the group: Broker: Not coordinator")
    report = sampler.sample(source, GroupSelection(("broken", "missing")))
    assert [(g.group, g.status, g.error) for g in report.groups] == [
        ("broken", Status.ERR, "cannot describe the group: Broker: Not coordinator"),
        ("missing", Status.ERR, "no such consumer group"),
    ]


def test_assigned_partition_without_a_commit_has_no_figures() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 5, P1: 7}
    cluster.group("g", {P0: 5}, members=1, owners={P0: "m-1", P1: "m-1"})
    g = only(sampler.sample(source, ALL), "g")
    p1 = g.partitions[1]
    assert (p1.committed, p1.log_end, p1.lag, p1.lag_seconds) == (None, 7, None, None)
    assert g.status is Status.OK and g.lag == 0


def test_partner_groups_are_labelled_under_the_topic_prefix() -> None:
    cluster, source, sampler = rig(prefix="t.x.")
    mine, other = ("t.x.partner.learnwell.students", 0), ("partner.learnwell.students", 0)
    cluster.log_end = {mine: 3, other: 3, P0: 3}
    cluster.group("learnwell-v", {mine: 3})
    cluster.group("foreign-v", {other: 3})
    cluster.group("mixed", {mine: 3, P0: 3})
    report = sampler.sample(source, ALL)
    assert {g.group: g.partner for g in report.groups} == {
        "learnwell-v": "learnwell",
        "foreign-v": None,
        "mixed": "learnwell",
    }
    assert [p.partner for p in only(report, "mixed").partitions] == [None, "learnwell"]


def test_history_of_groups_and_partitions_no_longer_reported_is_forgotten() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 5, P1: 9}
    cluster.group("a", {P0: 5})
    cluster.group("b", {P1: 9})
    sampler.sample(source, ALL)
    assert sampler.tracker.history(P1) != ()
    del cluster.groups["b"]
    cluster.now += 10
    report = sampler.sample(source, ALL)
    assert [g.group for g in report.groups] == ["a"]
    assert sampler.tracker.history(P1) == ()
    assert report.log_end == ((P0, 5),)


def test_a_failed_description_keeps_the_groups_history() -> None:
    cluster, source, sampler = rig()
    cluster.log_end = {P0: 10}
    cluster.group("g", {P0: 10}, members=1, owners={P0: "m"})
    sampler.sample(source, ALL)
    cluster.now += 10
    cluster.group("g", {}, error="cannot read its committed offsets: Local: Timed out")
    assert only(sampler.sample(source, ALL), "g").status is Status.ERR
    assert sampler.tracker.history(P0) != ()
