"""How the AdminClient's answers about one group become an observation (no broker: the
futures are completed by hand with confluent-kafka's own result types)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Node,
    TopicPartition,
)
from confluent_kafka.admin import ConsumerGroupDescription, MemberAssignment, MemberDescription  # type: ignore[attr-defined]

from streams.lag.collect import observe_group

T = "partner.learnwell.students"


def done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def failed(code: int) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(KafkaException(KafkaError(code)))
    return future


def description(
    state: ConsumerGroupState, *members: tuple[str, list[int]]
) -> ConsumerGroupDescription:
    return ConsumerGroupDescription(
        "g",
        False,
        [
            MemberDescription(
                member,
                "client",
                "/127.0.0.1",
                MemberAssignment([TopicPartition(T, p) for p in parts]),
            )
            for member, parts in members
        ],
        "range",
        state,
        Node(1, "127.0.0.1", 9092),
    )


def offsets(*committed: tuple[int, int]) -> ConsumerGroupTopicPartitions:
    return ConsumerGroupTopicPartitions("g", [TopicPartition(T, p, o) for p, o in committed])


def test_members_assignments_and_commits() -> None:
    obs = observe_group(
        "g",
        done(description(ConsumerGroupState.STABLE, ("m-1", [0, 1]), ("m-2", [2]))),
        done(offsets((0, 40), (1, -1001), (2, 7))),
    )
    assert obs.state == "STABLE" and obs.members == 2 and obs.error is None
    assert obs.owners == {(T, 0): "m-1", (T, 1): "m-1", (T, 2): "m-2"}
    assert obs.committed == {(T, 0): 40, (T, 2): 7}  # -1001: nothing committed


def test_a_group_that_cannot_be_described_still_shows_its_offsets() -> None:
    obs = observe_group("g", failed(KafkaError.NOT_COORDINATOR), done(offsets((0, 3))))
    assert obs.error == "cannot describe the group: Broker: Not coordinator"
    assert obs.committed == {(T, 0): 3}


def test_failed_offsets_and_unknown_groups_are_errors() -> None:
    obs = observe_group(
        "g", done(description(ConsumerGroupState.EMPTY)), failed(KafkaError._TIMED_OUT)
    )
    assert obs.error == "cannot read its committed offsets: Local: Timed out"
    gone = observe_group("g", done(description(ConsumerGroupState.DEAD)), done(offsets()))
    assert gone.error == "no such consumer group"
