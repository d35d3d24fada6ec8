"""The lag figures and status rules alone: lag in seconds against simulated producers whose
true append times are known, the sample history, Burrow-style statuses, partner names."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from functools import reduce
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka.names import Topics
from streams.lag.model import (
    DAY_S,
    CommitSample,
    GroupSelection,
    LogEndHistory,
    LogEndSample,
    Status,
    add_commit,
    add_log_end,
    appended_at,
    group_partner,
    lag_seconds,
    needs_record_time,
    partition_status,
    partner_of,
    worst,
)

# -- a simulated partition: record k appended at append_times[k] ---------------------------
times = st.integers(min_value=0, max_value=10_000).map(lambda ms: ms / 10)
append_times = st.lists(times, max_size=60).map(sorted)
sample_times = st.lists(times, min_size=1, max_size=40, unique=True).map(sorted)


def log_end_at(appends: Sequence[float], t: float) -> int:
    """How many records the log holds at time t."""
    return bisect_right(appends, t)


def sampled(
    appends: Sequence[float], at: Sequence[float], max_points: int = 10_000
) -> LogEndHistory:
    return reduce(
        lambda h, t: add_log_end(h, LogEndSample(t, log_end_at(appends, t)), max_points), at, ()
    )


@given(append_times, sample_times)
def test_estimate_lies_in_the_sampling_interval_where_the_record_really_arrived(
    appends: list[float], at: list[float]
) -> None:
    history = sampled(appends, at)
    for offset, true_time in enumerate(appends):
        before = [t for t in at if log_end_at(appends, t) <= offset]  # record not there yet
        after = [t for t in at if log_end_at(appends, t) > offset]  # record there
        estimate = appended_at(history, offset)
        if not before or not after:
            assert estimate is None  # the samples do not enclose it: no guess
            continue
        assert estimate is not None
        lo, hi = max(before), min(after)
        assert lo < true_time <= hi
        assert lo < estimate <= hi


@given(
    st.integers(0, 1000),
    st.integers(1, 50).map(lambda ms: ms / 10),
    st.lists(st.integers(1, 200), min_size=2, max_size=20, unique=True).map(sorted),
    st.integers(0, 200),
)
def test_evenly_paced_producer_is_estimated_exactly(
    start: int, every: float, log_ends: list[int], offset: int
) -> None:
    # record k appended at start + k * every; sampled at the instants some records arrived
    history = tuple(LogEndSample(start + (o - 1) * every, o) for o in log_ends)
    estimate = appended_at(history, offset)
    if log_ends[0] <= offset < log_ends[-1]:
        assert estimate == pytest.approx(start + offset * every)
    else:
        assert estimate is None


@given(append_times, sample_times, st.integers(0, 70), st.integers(0, 70))
def test_older_offsets_are_never_estimated_younger(
    appends: list[float], at: list[float], a: int, b: int
) -> None:
    history = sampled(appends, at)
    early, late = appended_at(history, min(a, b)), appended_at(history, max(a, b))
    if early is not None and late is not None:
        assert early <= late


@given(append_times, sample_times, st.integers(2, 6))
def test_a_bounded_history_answers_like_the_full_one_where_it_answers(
    appends: list[float], at: list[float], max_points: int
) -> None:
    full, bounded = sampled(appends, at), sampled(appends, at, max_points)
    assert len(bounded) <= max_points
    assert bounded[-1] == full[-1]
    for offset in range(len(appends) + 1):
        estimate = appended_at(bounded, offset)
        if estimate is not None:
            assert estimate == appended_at(full, offset)


@given(append_times, sample_times)
def test_history_keeps_runs_of_one_offset_to_their_first_and_last_sample(
    appends: list[float], at: list[float]
) -> None:
    history = sampled(appends, at)
    offsets = [s.offset for s in history]
    assert offsets == sorted(offsets)
    assert all(
        not (a == b == c) for a, b, c in zip(offsets, offsets[1:], offsets[2:], strict=False)
    )
    assert history[-1].at == at[-1]
    assert history[0].at == at[0]  # the first sample is kept until the bound pushes it out


def test_history_starts_again_when_the_log_end_goes_back_or_the_clock_does() -> None:
    history = (LogEndSample(10.0, 5), LogEndSample(20.0, 9))
    assert add_log_end(history, LogEndSample(30.0, 2)) == (LogEndSample(30.0, 2),)
    assert add_log_end(history, LogEndSample(15.0, 9)) == (LogEndSample(15.0, 9),)
    with pytest.raises(ValueError, match="at least 2"):
        add_log_end(history, LogEndSample(30.0, 9), max_points=1)


@given(
    append_times,
    sample_times,
    st.integers(0, 70),
    times.map(lambda t: t + 1000),
    st.one_of(st.none(), times),
)
def test_lag_seconds(
    appends: list[float], at: list[float], committed: int, now: float, record_time: float | None
) -> None:
    history = sampled(appends, at)
    log_end = history[-1].offset
    seconds = lag_seconds(history, committed, log_end, now, record_time)
    estimate = appended_at(history, committed)
    if committed >= log_end:
        assert seconds == 0.0
        assert not needs_record_time(history, committed, log_end)
    elif estimate is not None:
        assert seconds == pytest.approx(now - estimate)  # the samples win over the record
        assert not needs_record_time(history, committed, log_end)
    else:
        assert needs_record_time(history, committed, log_end)
        if record_time is not None and record_time % DAY_S == 0:  # a day stamp
            assert seconds is not None and seconds <= max(0.0, now - record_time)
        else:
            assert seconds == (None if record_time is None else max(0.0, now - record_time))
    assert seconds is None or seconds >= 0


def test_a_day_stamp_gives_the_least_age_the_record_can_have() -> None:
    """Partner topics carry whole UTC days as timestamps: a record stamped day D came during
    D, and before the oldest sample whose log end was past it."""
    day = 20_000 * DAY_S
    history = (LogEndSample(day + 3_600.0, 40),)  # the exporter's first sample, at 01:00
    assert lag_seconds(history, 25, 40, now=day + 4_000.0, record_time=day) == 400.0
    # a group stuck since yesterday: at least the time since yesterday's end
    later = (LogEndSample(day + 2 * DAY_S, 40),)
    assert lag_seconds(later, 25, 40, now=day + 2 * DAY_S + 10, record_time=day) == DAY_S + 10
    # a timestamp that is not a whole day is taken as it is
    assert lag_seconds(history, 25, 40, now=day + 4_000.0, record_time=day + 1.5) == 3_998.5


def test_a_single_sample_needs_the_record_timestamp() -> None:
    history = (LogEndSample(100.0, 40),)
    assert needs_record_time(history, 25, 40)
    assert lag_seconds(history, 25, 40, now=100.0, record_time=70.5) == 29.5
    assert lag_seconds(history, 25, 40, now=100.0) is None
    assert lag_seconds(history, 40, 40, now=100.0) == 0.0
    # a record stamped in the future (producer clock ahead) is not negative lag
    assert lag_seconds(history, 25, 40, now=100.0, record_time=130.0) == 0.0


def test_interpolation_between_two_samples() -> None:
    # 100 records appended between t=0 and t=10: the record at 149 is the 50th of them
    history = (LogEndSample(0.0, 100), LogEndSample(10.0, 200))
    assert appended_at(history, 149) == pytest.approx(5.0)
    assert lag_seconds(history, 149, 200, now=12.0) == pytest.approx(7.0)
    assert appended_at(history, 100) == pytest.approx(0.1)
    assert appended_at(history, 199) == pytest.approx(10.0)
    assert appended_at(history, 99) is None and appended_at(history, 200) is None


# -- status -------------------------------------------------------------------------------
def window(*points: tuple[int, int]) -> tuple[CommitSample, ...]:
    """Samples 10 s apart from (committed, log end) pairs."""
    return tuple(CommitSample(10.0 * i, c, e) for i, (c, e) in enumerate(points))


@pytest.mark.parametrize(
    ("points", "owned", "expected"),
    [
        # caught up now, or at some point of the window
        ([(5, 5)], False, Status.OK),
        ([(10, 20), (20, 20)], True, Status.OK),
        ([(20, 20), (20, 25), (22, 30)], True, Status.OK),
        # consumers stopped or left: nobody owns the partition, nothing committed since
        ([(10, 40)], False, Status.STOP),
        ([(10, 40), (10, 40)], False, Status.STOP),
        ([(20, 20), (20, 25)], False, Status.STOP),
        # a member owns it and commits nothing while lag stays
        ([(10, 40), (10, 40)], True, Status.STALL),
        ([(10, 40), (10, 45), (10, 50)], True, Status.STALL),
        # moving but falling behind at every interval
        ([(10, 20), (15, 30), (20, 40)], True, Status.WARN),
        # moving and keeping up, or lag growing only sometimes
        ([(10, 20), (15, 30), (25, 30)], True, Status.OK),
        ([(10, 20), (15, 30)], True, Status.OK),
        ([(10, 40)], True, Status.OK),
        # an owner-less partition that still gets commits (manual assignment): not stopped
        ([(10, 20), (15, 30), (20, 40)], False, Status.WARN),
        ([(10, 40), (12, 40)], False, Status.OK),
        ([], True, Status.OK),
    ],
)
def test_partition_status_rules(
    points: list[tuple[int, int]], owned: bool, expected: Status
) -> None:
    assert partition_status(window(*points), owned) is expected


commit_windows = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 40)), min_size=1, max_size=8
).map(lambda pts: window(*pts))


@given(commit_windows, st.booleans())
def test_status_properties(samples: tuple[CommitSample, ...], owned: bool) -> None:
    status = partition_status(samples, owned)
    latest = samples[-1]
    assert status is not Status.ERR  # only a group that cannot be described is ERR
    if latest.lag == 0:
        assert status is Status.OK
        return
    if not owned and (len(samples) == 1 or samples[-2].committed == latest.committed):
        assert status is Status.STOP  # stopped with lag is never OK
    if status is Status.STALL:
        assert owned and len(samples) >= 2
        assert len({s.committed for s in samples}) == 1 and all(s.lag > 0 for s in samples)
    if status is Status.WARN:
        assert len(samples) >= 3 and len({s.committed for s in samples}) > 1
        assert all(b.lag > a.lag for a, b in pairwise(samples))
    if status is Status.STOP:
        assert not owned
    if (
        owned
        and len(samples) >= 2
        and all(s.lag > 0 for s in samples)
        and len({s.committed for s in samples}) == 1
    ):
        assert status is Status.STALL


@given(st.lists(st.sampled_from(list(Status))))
def test_a_group_is_as_bad_as_its_worst_partition(statuses: list[Status]) -> None:
    result = worst(statuses)
    assert all(result.severity >= s.severity for s in statuses)
    assert result in statuses or (not statuses and result is Status.OK)


def test_commit_window_keeps_the_newest_samples() -> None:
    w: tuple[CommitSample, ...] = ()
    for i in range(15):
        w = add_commit(w, CommitSample(float(i), i, 20), size=10)
    assert [s.committed for s in w] == list(range(5, 15))
    assert add_commit(w, CommitSample(3.0, 1, 20)) == (CommitSample(3.0, 1, 20),)


# -- partners and selection ---------------------------------------------------------------
partner_ids = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
prefixes = st.from_regex(r"[a-z0-9._-]{0,12}", fullmatch=True)


@given(partner_ids, prefixes)
def test_partner_topics_name_their_partner(partner: str, prefix: str) -> None:
    topics = Topics(prefix)
    assert partner_of(topics.partner(partner), topics) == partner
    assert partner_of(topics.notices(partner), topics) is None
    assert partner_of(topics.changes, topics) is None
    if prefix:
        # another deployment's partner topic is not ours
        assert partner_of(Topics().partner(partner), topics) is None or Topics().partner(
            partner
        ).startswith(prefix)


def test_partner_examples() -> None:
    assert partner_of("partner.learnwell.students", Topics()) == "learnwell"
    assert partner_of("t.x.partner.learnwell.students", Topics("t.x.")) == "learnwell"
    assert partner_of("partner.learnwell.students", Topics("t.x.")) is None
    assert partner_of("partner.Learn_Well.students", Topics()) is None
    assert partner_of("partner.-bad.students", Topics()) is None
    assert partner_of("partner.learnwell.students.dlq", Topics()) is None
    assert group_partner([None, "learnwell", "learnwell"]) == "learnwell"
    assert group_partner(["measurely", None, "learnwell"]) == "learnwell,measurely"
    assert group_partner([None]) is None


def test_group_selection() -> None:
    listed = ["hallpass-processor", "learnwell-v", "measurely-v", "apicurio-1"]
    assert GroupSelection().select(listed) == sorted(listed)
    assert GroupSelection(("*-v",)).select(listed) == ["learnwell-v", "measurely-v"]
    # a name asked for is reported even when the cluster does not list it
    assert GroupSelection(("gone", "learn*")).select(listed) == ["gone", "learnwell-v"]
    assert GroupSelection(("gone", "learn*")).named == ("gone",)
