"""Dead letters for operators: list them, show one, replay a selection exactly once.

The processor writes a record it cannot decide to ``sis.student.changes.dlq`` (under the
topic prefix) with its reason and origin in the headers ``hallpass.dlq.reason``,
``.topic``, ``.partition`` and ``.offset`` (:class:`streams.processor.dlq.InvalidMessage`).
A decodable record is already stripped of never-share values there; an undecodable one is
kept raw, so it is never printed: only its length and a hex prefix.

**Replay exactly once.** A replay reads the dead letters and the marker topic
``sis.student.changes.dlq.replayed`` (compacted, one record per replayed dead letter, keyed by
its DLQ position) and, in one Kafka transaction, writes each selected dead letter that has
no marker back to its input topic and its marker. The transactional id is one per DLQ topic
(``hallpass-dlq-replay-<dlq topic>``): a second replay started while one runs fences it (its
transaction is aborted, nothing of it is visible) and reads the markers only after that, so
two replays of one selection, in sequence or at once, write each record once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, Producer

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics
from streams.kafka.read_to_end import nonempty_from_start, read_to_end, topic_partitions
from streams.policy.retention import Role, TopicSettings, spec

#: the marker topic of replayed dead letters, under the topic prefix
REPLAYED_SUFFIX = ".replayed"
#: the header a replayed record carries: the DLQ position it came from
REPLAYED_HEADER = "hallpass.dlq.replayed-from"
#: bytes of an undecodable value shown (as hex) by ``show``
HEX_PREFIX_BYTES = 16
_REASON, _TOPIC, _PARTITION, _OFFSET = (
    f"hallpass.dlq.{h}" for h in ("reason", "topic", "partition", "offset")
)


class DlqError(HallpassError, ValueError):
    """A selection or position that names no dead letter, or a DLQ that cannot be used."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of the DLQ: where it is, why it is there and where it came from."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    reason: str
    origin_topic: str
    origin_partition: int | None
    origin_offset: int | None
    #: other headers (e.g. a replay's marker header), as text where they are text
    headers: Mapping[str, bytes]

    @property
    def position(self) -> str:
        """``PARTITION:OFFSET`` in the DLQ: what ``show`` takes and markers are keyed by."""
        return f"{self.partition}:{self.offset}"

    @property
    def kind(self) -> str:
        """The reason's kind: the part before its first colon (``undecodable``,
        ``invalid``, ``future_dated``...)."""
        return self.reason.split(":", 1)[0].strip()

    @property
    def origin(self) -> str:
        if self.origin_partition is None:
            return self.origin_topic or "?"
        return f"{self.origin_topic}[{self.origin_partition}]@{self.origin_offset}"


def _int(raw: bytes | None) -> int | None:
    try:
        return int(raw.decode()) if raw is not None else None
    except (UnicodeDecodeError, ValueError):
        return None


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _dead_letter(msg: Any) -> DeadLetter:
    pairs = cast(list[tuple[str, bytes | None]], msg.headers() or [])
    headers = {k: v for k, v in pairs if isinstance(v, bytes)}
    return DeadLetter(
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=msg.timestamp()[1],
        key=msg.key(),
        value=msg.value(),
        reason=_text(headers.get(_REASON)) or "(no reason recorded)",
        origin_topic=_text(headers.get(_TOPIC)),
        origin_partition=_int(headers.get(_PARTITION)),
        origin_offset=_int(headers.get(_OFFSET)),
        headers=headers,
    )


def _consumer(conn: Connection) -> Consumer:
    return Consumer(
        conn.kafka_config(
            {
                "group.id": f"hallpass-dlq-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )


def _read(conn: Connection, topic: str, timeout_s: float) -> Iterator[Any]:
    consumer = _consumer(conn)
    try:
        partitions = topic_partitions(consumer, topic)
        if partitions is None:
            return
        yield from read_to_end(
            consumer, nonempty_from_start(consumer, topic, partitions), timeout_s
        )
    finally:
        consumer.close()


def read_dead_letters(
    conn: Connection, topics: Topics, timeout_s: float = 120.0
) -> list[DeadLetter]:
    """Every committed dead letter, in DLQ order."""
    found = [_dead_letter(m) for m in _read(conn, topics.changes_dlq, timeout_s)]
    return sorted(found, key=lambda d: (d.partition, d.offset))


def replayed_topic(topics: Topics) -> str:
    return topics.changes_dlq_replayed


def read_replayed(conn: Connection, topics: Topics, timeout_s: float = 120.0) -> set[str]:
    """The DLQ positions already replayed (committed markers)."""
    return {
        _text(m.key())
        for m in _read(conn, replayed_topic(topics), timeout_s)
        if m.value() is not None
    }


def find(letters: Sequence[DeadLetter], position: str) -> DeadLetter:
    """The dead letter at ``PARTITION:OFFSET`` (or just ``OFFSET`` on partition 0)."""
    part, _, off = position.rpartition(":")
    try:
        wanted = (int(part or 0), int(off))
    except ValueError:
        raise DlqError(
            f"{position!r} is not a DLQ position: give PARTITION:OFFSET as "
            "`hallpass dlq list` shows it"
        ) from None
    for letter in letters:
        if (letter.partition, letter.offset) == wanted:
            return letter
    raise DlqError(f"no dead letter at {position} (`hallpass dlq list` shows them)")


@dataclass(frozen=True)
class Selection:
    """Which dead letters to replay: every given criterion must match; none given: refused
    unless ``everything``."""

    #: reason kinds (``undecodable``, ``invalid``...) or reason prefixes
    reasons: tuple[str, ...] = ()
    #: origins ``TOPIC``, ``TOPIC:PARTITION`` or ``TOPIC:PARTITION:FROM[-TO]``
    origins: tuple[str, ...] = ()
    #: DLQ positions ``PARTITION:OFFSET``
    positions: tuple[str, ...] = ()
    everything: bool = False

    def __post_init__(self) -> None:
        if not (self.reasons or self.origins or self.positions or self.everything):
            raise DlqError("say what to replay: --reason, --origin, --position or --all")
        for origin in self.origins:
            _origin_matcher(origin)

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and not any(
            letter.kind == r or letter.reason.startswith(r) for r in self.reasons
        ):
            return False
        if self.origins and not any(_origin_matcher(o)(letter) for o in self.origins):
            return False
        return not self.positions or letter.position in self.positions


def _origin_matcher(origin: str) -> Callable[[DeadLetter], bool]:
    topic, *rest = origin.split(":")
    try:
        partition = int(rest[0]) if rest else None
        low_text, _, high_text = rest[1].partition("-") if len(rest) > 1 else ("", "", "")
        low = int(low_text) if low_text else None
        high = int(high_text) if high_text else low
    except ValueError:
        raise DlqError(
            f"--origin {origin!r}: give TOPIC, TOPIC:PARTITION or "
            "TOPIC:PARTITION:FROM[-TO] (offsets of the input topic)"
        ) from None
    if len(rest) > 2 or not topic:
        raise DlqError(
            f"--origin {origin!r}: give TOPIC, TOPIC:PARTITION or TOPIC:PARTITION:FROM[-TO]"
        )

    def matches(letter: DeadLetter) -> bool:
        if letter.origin_topic != topic:
            return False
        if partition is not None and letter.origin_partition != partition:
            return False
        if low is None:
            return True
        return letter.origin_offset is not None and low <= letter.origin_offset <= (high or low)

    return matches


@dataclass(frozen=True)
class ReplayResult:
    replayed: list[DeadLetter]
    #: selected but replayed before (a marker exists)
    already: list[DeadLetter]
    #: selected but without a body (the processor could not keep one) or an input topic
    unusable: list[tuple[DeadLetter, str]]


def _ensure_marker_topic(
    conn: Connection, topics: Topics, replication_factor: int, min_insync: int | None
) -> None:
    """The marker topic as :mod:`streams.policy.retention` configures it (compacted, one
    partition, with its reason)."""
    settings = TopicSettings(replication_factor=replication_factor, min_insync_replicas=min_insync)
    ensure_topics(conn, [spec(Role.CHANGES_DLQ_REPLAYED, replayed_topic(topics), 1, settings)])


def transactional_id(topics: Topics) -> str:
    return f"hallpass-dlq-replay-{topics.changes_dlq}"


def replay(
    conn: Connection,
    topics: Topics,
    selection: Selection,
    *,
    inputs: Iterable[str] | None = None,
    replication_factor: int = -1,
    min_insync: int | None = None,
    timeout_s: float = 120.0,
    on_fenced: Callable[[], None] | None = None,
) -> ReplayResult:
    """Write the selected dead letters not replayed before back to their input topics, with
    their markers, in one transaction. ``inputs``: the topics a dead letter may go back to
    (default: the change and consent topics under the prefix)."""
    allowed = set(inputs) if inputs is not None else {topics.changes, topics.consent}
    _ensure_marker_topic(conn, topics, replication_factor, min_insync)
    producer = Producer(
        conn.kafka_config(
            {
                "transactional.id": transactional_id(topics),
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "transaction.timeout.ms": int(timeout_s * 1000),
            }
        )
    )
    try:  # commit_transaction delivers everything; an abort or a fence leaves nothing
        # fences (and waits out) any replay of this DLQ still open, before reading markers
        producer.init_transactions(timeout_s)
        done = read_replayed(conn, topics, timeout_s)
        chosen = [d for d in read_dead_letters(conn, topics, timeout_s) if selection.matches(d)]
        result = ReplayResult([], [], [])
        for letter in chosen:
            if letter.position in done:
                result.already.append(letter)
            elif letter.value is None:
                result.unusable.append(
                    (
                        letter,
                        "no body was kept (it could not be "
                        "re-encoded without its never-share values)",
                    )
                )
            elif letter.origin_topic not in allowed:
                result.unusable.append(
                    (
                        letter,
                        f"its origin {letter.origin_topic!r} is not "
                        "an input topic of this deployment",
                    )
                )
            else:
                result.replayed.append(letter)
        if not result.replayed:
            return result
        producer.begin_transaction()
        marker_topic = replayed_topic(topics)
        now = int(time.time() * 1000)
        for letter in result.replayed:
            producer.produce(
                letter.origin_topic,
                key=letter.key,
                value=letter.value,
                headers=[(REPLAYED_HEADER, f"{topics.changes_dlq}|{letter.position}".encode())],
            )
            producer.produce(
                marker_topic,
                key=letter.position.encode(),
                value=json.dumps(
                    {
                        "replayed_at": now,
                        "to": letter.origin_topic,
                        "reason": letter.reason,
                    }
                ).encode(),
            )
            producer.poll(0)
        if on_fenced is not None:  # a test's hook: another replay starts now
            on_fenced()
        producer.commit_transaction(timeout_s)
        return result
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if error is not None and hasattr(error, "fatal") and error.fatal():
            raise DlqError(
                "another `hallpass dlq replay` of this DLQ started and took over; "
                "nothing of this one was written"
            ) from exc
        raise


def render_bytes(raw: bytes | None) -> str:
    """A value that may not be text, for a terminal: its length and a hex prefix, never the
    raw bytes."""
    if raw is None:
        return "(none)"
    head = raw[:HEX_PREFIX_BYTES].hex(" ")
    more = " ..." if len(raw) > HEX_PREFIX_BYTES else ""
    return f"{len(raw)} bytes: {head}{more}"


def render_key(raw: bytes | None) -> str:
    """A key as text when it is printable text, else as :func:`render_bytes`."""
    if raw is None:
        return "(none)"
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return render_bytes(raw)
    if text.isprintable() and len(text) <= 256:
        return text
    return render_bytes(raw)


def stripped(record: dict[str, Any], never_share: Iterable[str]) -> dict[str, Any]:
    """``record`` with the leaves at ``never_share`` set to None (again: a dead letter is
    stripped when it is written; a record written by something else may not be)."""
    from streams.policy.schema_walk import holders, last_name

    for path in never_share:
        name = last_name(path)
        for holder in holders(record, path):
            if isinstance(holder, dict) and holder.get(name) is not None:
                holder[name] = None
    return record
