"""Reading assigned partitions from given offsets up to their current end.

The end is the broker's: with ``isolation.level=read_committed`` a partition reports its end
(``_PARTITION_EOF``) at the last stable offset, so an open transaction is never read past.
Used to restore tables, to sync a vendor copy, and to read the audit ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.errors import HallpassError


class TopicUnreadableError(HallpassError, RuntimeError):
    """The broker refuses to describe a topic (not authorized, or another error)."""


def topic_partitions(consumer: Consumer, topic: str, timeout_s: float = 30.0) -> list[int] | None:
    """The partition numbers of ``topic``; None if it does not exist. Any other metadata
    error (e.g. not authorized) raises, so a refused read is never mistaken for an empty
    topic."""
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None:
        return None
    if metadata.error is not None:
        if metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise TopicUnreadableError(
            f"cannot read {topic}: {metadata.error.str()} (check the principal's ACLs: "
            "`hallpass acl plan` lists what each role may read)"
        )
    return sorted(metadata.partitions)


def nonempty_from_start(
    consumer: Consumer, topic: str, partitions: Iterable[int]
) -> list[TopicPartition]:
    """The partitions of ``topic`` that hold records, each from its first offset."""
    assignment = []
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        if high > low:
            assignment.append(TopicPartition(topic, p, low))
    return assignment


def read_to_end(
    consumer: Consumer, assignment: list[TopicPartition], timeout_s: float = 120.0
) -> Iterator[Message]:
    """Assign ``assignment`` and yield every record until each partition reached its end.

    The consumer must have ``enable.partition.eof`` set. Raises TimeoutError if the end is not
    reached within ``timeout_s``, RuntimeError on a consumer error.
    """
    pending = {(tp.topic, tp.partition) for tp in assignment}
    if not pending:
        return
    consumer.assign(assignment)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"did not reach the end of {sorted(pending)} in {timeout_s}s")
        # consume() waits for a full batch or the timeout: keep the timeout short
        for msg in consumer.consume(num_messages=10000, timeout=0.5):
            err = msg.error()
            where = (msg.topic() or "", msg.partition() or 0)
            if err is None:
                yield msg
            elif err.code() == KafkaError._PARTITION_EOF:
                pending.discard(where)
            else:
                raise RuntimeError(f"reading {where[0]}[{where[1]}]: {err}")
