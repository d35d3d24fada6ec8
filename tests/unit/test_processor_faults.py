"""Faults the processor survives without Kafka (issue 16): every per-record failure is a dead
letter with a reason and leaves the tables as they were; a partition whose recent records are
mostly invalid is halted alone; the transaction decisions (retry, abort, exit) on a fake
producer; registry lookups that fail are waits, not bad input, and are not cached."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.config import Connection
from streams.kafka.wire import RegistryUnavailable, WireDecoder, WireEncoder, WireFormatError
from streams.policy.catalog import load_schema
from streams.policy.consent import StudentConsentHistory
from streams.processor.loop import ProcessorFenced, ProcessorLoop, TransactionFailed, Transactions
from streams.processor.routing import partition_for
from streams.processor.state import Tables
from tests.processor_harness import NEVER_SHARE, Cluster, _Msg
from tests.unit.test_handler import BASE, NOW, ROUTES, Bus, change, dlq_reason, grant

PARTITIONS = 4


def _dead(bus: Bus) -> list[tuple[bytes | None, bytes]]:
    return [(d.key, dlq_reason(d)) for d in bus.cluster.dead_letters()]


# -- every per-record failure is a dead letter ------------------------------------------------
def test_a_record_of_another_schema_on_the_change_topic_is_a_dead_letter() -> None:
    """A consent event written to the change topic (another registered schema): a dead
    letter with its reason, and the next change is decided."""
    bus = Bus()
    bus.cluster.broker.produce(
        bus.cluster.topics.changes,
        b"NY-001",
        orjson.dumps(grant("NY-001", NOW - 1000).to_avro()),
        lambda key, n: partition_for(key or b"", n),
    )
    bus.change(change("NY-002", NOW - 1000, "c-2"))
    bus.settle()
    [(key, reason)] = _dead(bus)
    assert key == b"NY-001" and reason.startswith(b"invalid: ")
    assert bus.holds("learnwell") == {"NY-002"}


def test_a_change_too_large_for_a_record_is_a_dead_letter_and_the_tables_keep_nothing() -> None:
    """A change whose changelog entry would be over the largest record the processor writes
    (1 MB in production, where MSG_SIZE_TOO_LARGE crashed every restart; 3,450 bytes here,
    which a name of 250 characters crosses): a dead letter naming the limit, nothing stored,
    the next change decided."""
    bus = Bus()
    worker = bus.cluster.workers[0]
    worker.handler.settings = dataclasses.replace(worker.handler.settings, max_record_bytes=3450)
    bus.change(change("NY-001", NOW - 1000, "c-1", name="x" * 250))
    bus.change(change("NY-002", NOW - 1000, "c-2"))
    bus.settle()
    [(key, reason)] = _dead(bus)
    assert key == b"NY-001" and reason.startswith(b"too_large: ") and b"3450" in reason
    assert bus.holds("learnwell") == {"NY-002"}
    assert all(s.stored("NY-001") is None for s in worker.tables.partitions.values())


def test_the_changelog_stores_a_record_compactly_where_json_would_escape_it() -> None:
    """The changelog entry is binary, its strings raw: a name of 250 quotes, which JSON
    escapes to 500 bytes and which made the entry over 4,400 bytes as JSON, is stored and
    decided like any other (issue 16: "binary, not escaped JSON")."""
    bus = Bus()
    worker = bus.cluster.workers[0]
    worker.handler.settings = dataclasses.replace(worker.handler.settings, max_record_bytes=4400)
    bus.change(change("NY-001", NOW - 1000, "c-1", name='"' * 250))
    bus.settle()
    assert _dead(bus) == []
    assert bus.holds("learnwell") == {"NY-001"}
    [stored] = [s.stored("NY-001") for s in worker.tables.partitions.values() if s.stored("NY-001")]
    assert stored is not None and stored["names"]["first_name"] == '"' * 250


def test_a_changelog_written_as_json_by_an_older_version_is_still_read() -> None:
    """Restoring from a changelog written before the binary format: records and holdings
    written as JSON are read as they were."""
    record = change("NY-001", NOW - 1000, "c-1")
    tables = Tables()
    state = tables.partition(0)
    state.load(b"r|NY-001", orjson.dumps(record))
    state.load(b"p|NY-001", orjson.dumps([["learnwell", 7, ["student_id"]]]))
    assert state.stored("NY-001") == record
    assert state.students_of_district(record["district_id"]) == ["NY-001"]
    assert state.holders["NY-001"] == (("learnwell", 7, ("student_id",)),)
    tables.set_record(0, "NY-002", record)
    [written] = [c for c in tables.take_changes() if c.key == b"r|NY-002"]
    assert written.value is not None and not written.value.startswith(b"{")
    assert len(written.value) < len(orjson.dumps(record))
    state.load(b"r|NY-002", written.value)
    assert sorted(state.students_of_district(record["district_id"])) == ["NY-001", "NY-002"]


def test_consent_histories_are_kept_as_bytes_and_a_restore_decodes_none() -> None:
    """The consent table keeps each history as its changelog bytes with its due times in
    front: a restore schedules the timers from those (no history decoded), a history is
    decoded when asked for, and a history written as JSON by an older version is read."""
    later = grant("NY-1", NOW + 5000)
    history = StudentConsentHistory((grant("NY-1", NOW - 1000), later))
    tables = Tables()
    tables.set_consent(0, "NY-1", history)
    [written] = tables.take_changes()
    assert written.value is not None and written.value[:1] == b"\x02"
    restored = Tables().partition(0)
    restored.load(b"c|NY-1", written.value)
    restored.load(b"c|NY-2", StudentConsentHistory((grant("NY-2", NOW),)).to_bytes())  # JSON
    assert restored.consent["NY-1"] == history and restored.consent.get("NY-3") is None
    assert {s: (n, dues) for s, n, dues in restored.consent.dues()} == {
        "NY-1": (2, (NOW - 1000, NOW + 5000)),
        "NY-2": (1, (NOW,)),
    }
    bus = Bus()
    worker = bus.cluster.workers[0]
    number = partition_for(b"NY-1", PARTITIONS)
    worker.tables.partition(number).load(b"c|NY-1", written.value)
    worker.tables.partition(number).clock = NOW  # acted on up to now: only the later grant
    worker.handler.on_restored(worker.tables)
    assert worker.handler.timers.pop_due(number, NOW + 4999) == {}
    assert worker.handler.timers.pop_due(number, NOW + 5000) == {"NY-1": NOW + 5000}


def test_a_consent_write_rolled_back_leaves_the_history_as_committed() -> None:
    tables = Tables()
    first = StudentConsentHistory((grant("NY-1", NOW - 1000),))
    tables.set_consent(0, "NY-1", first)
    tables.take_changes()
    tables.forget()
    tables.set_consent(
        0, "NY-1", StudentConsentHistory((grant("NY-1", NOW - 1000), grant("NY-1", NOW)))
    )
    tables.set_consent(0, "NY-2", first)
    tables.rollback()
    assert tables.partition(0).consent["NY-1"] == first
    assert "NY-2" not in tables.partition(0).consent


def test_a_failure_while_deciding_is_a_redacted_dead_letter_and_rolls_the_tables_back() -> None:
    """A view encoder that fails for one student (any exception, not only the expected
    kinds): the record is a dead letter without its never-share values, the consent and
    record tables hold nothing of it, and the other students are decided."""

    def failing(encode: Callable[[Mapping[str, Any]], bytes]) -> Callable[..., bytes]:
        def encode_view(view: Mapping[str, Any]) -> bytes:
            if "Boom" in orjson.dumps(view).decode():
                raise RuntimeError("a bug in a view encoder")
            return encode(view)

        return encode_view

    routes = [dataclasses.replace(r, encode_view=failing(r.encode_view)) for r in ROUTES]
    bus = Bus()
    bus.cluster = Cluster(routes, PARTITIONS, bus.clock)
    bus.cluster.start_worker()
    bus.cluster.rebalance()
    bus.change(change("NY-001", NOW - 1000, "c-1", name="Boom"))
    bus.change(change("NY-002", NOW - 1000, "c-2"))
    bus.settle()
    [dead] = bus.cluster.dead_letters()
    assert dlq_reason(dead) == b"invalid: the record could not be decided (RuntimeError)"
    secrets = [v for v in BASE["restricted"].values() if isinstance(v, str)]
    assert secrets and not [s for s in secrets if s.encode() in (dead.value or b"")]
    tables = bus.cluster.workers[0].tables
    assert all(
        s.stored("NY-001") is None and "NY-001" not in s.holders for s in tables.partitions.values()
    )
    assert bus.holds("learnwell") == {"NY-002"}


def test_tables_roll_back_to_a_mark_and_to_the_last_commit() -> None:
    tables = Tables()
    tables.set_record(0, "NY-001", {"student_id": "NY-001", "v": 1})
    tables.set_clock(0, 5)
    tables.take_changes()
    tables.forget()  # committed
    before = (
        dict(tables.partition(0).records),
        dict(tables.partition(0).consent),
        tables.partition(0).clock,
        dict(tables.districts),
        tables.districts_version,
    )
    mark = tables.mark()
    tables.set_record(0, "NY-001", {"student_id": "NY-001", "v": 2})
    tables.set_record(0, "NY-002", {"student_id": "NY-002"})
    tables.set_consent(0, "NY-002", StudentConsentHistory().apply(grant("NY-002", NOW)))
    tables.set_holders(0, "NY-002", {"learnwell": (7, ("a",))})
    assert len(tables.changes_since(mark)) == 4
    tables.rollback(mark)
    assert tables.changes_since(mark) == [] and tables.take_changes() == []
    tables.set_clock(0, 9)
    tables.set_record(1, "NY-003", {"student_id": "NY-003"})
    tables.take_changes()
    tables.rollback()  # the transaction is aborted
    after = (
        dict(tables.partition(0).records),
        dict(tables.partition(0).consent),
        tables.partition(0).clock,
        dict(tables.districts),
    )
    assert after == before[:4] and tables.partition(1).records == {}
    assert tables.partition(0).holders == {} and tables.take_changes() == []


# -- the halt is per partition ----------------------------------------------------------------
def test_garbage_on_one_partition_halts_that_partition_only() -> None:
    """200 undecodable records under one key, 600 valid changes on the other partitions: the
    garbage's partition is halted (with the cause and the DLQ topic named), the 600 are
    decided, and the records that tripped the halt are dead letters."""
    bus = Bus()
    topics = bus.cluster.topics
    bad = partition_for(b"NY-GARBAGE", PARTITIONS)
    students = [
        s
        for s in (f"NY-{i:04d}" for i in range(2000))
        if partition_for(s.encode(), PARTITIONS) != bad
    ][:600]
    for _ in range(200):
        bus.cluster.broker.produce(
            topics.changes,
            b"NY-GARBAGE",
            b"\x07not avro",
            lambda key, n: partition_for(key or b"", n),
        )
    for i, student in enumerate(students):
        bus.change(change(student, NOW - 1000, f"c-{i}"))
    bus.settle()
    handler = bus.cluster.workers[0].handler
    assert list(handler.halted) == [(topics.changes, bad)]
    why = handler.halted[(topics.changes, bad)]
    assert topics.changes_dlq in why and "not JSON" in why and f"[{bad}]" in why
    route = next(r for r in ROUTES if r.partner == "learnwell")
    assert len(bus.cluster.partner_state(route)) == 600
    assert len(bus.cluster.dead_letters()) >= 50


# -- transactions recover ---------------------------------------------------------------------
class FakeProducer:
    """Raises the scripted errors, in order, from each transactional call."""

    def __init__(self, **script: list[KafkaError]) -> None:
        self.script = script
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = self.script.get(name, [])
        if errors:
            raise KafkaException(errors.pop(0))

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float
    ) -> None:
        self._call("send_offsets")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")


def _txn(producer: FakeProducer, stopping: Callable[[], bool] = lambda: False) -> Transactions:
    return Transactions(producer, "hallpass-processor-w0", stopping, sleep=lambda _s: None)


def _run(txn: Transactions) -> bool:
    return txn.run(lambda: None, [TopicPartition("t", 0, 5)], object())


RETRIABLE_NOT_COORDINATOR = KafkaError(
    KafkaError.NOT_COORDINATOR, "not coordinator", retriable=True
)
LOADING = KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, "loading", retriable=True)
ABORTABLE = KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)


def test_a_retriable_error_sending_offsets_or_committing_is_tried_again() -> None:
    producer = FakeProducer(
        send_offsets=[RETRIABLE_NOT_COORDINATOR, LOADING], commit=[RETRIABLE_NOT_COORDINATOR]
    )
    assert _run(_txn(producer))
    assert producer.calls == [
        "begin",
        "send_offsets",
        "send_offsets",
        "send_offsets",
        "commit",
        "commit",
    ]


def test_an_error_that_needs_an_abort_aborts_and_the_batch_is_retried() -> None:
    producer = FakeProducer(commit=[ABORTABLE])
    assert not _run(_txn(producer))
    assert producer.calls == ["begin", "send_offsets", "commit", "abort"]
    # NOT_COORDINATOR that is neither retriable nor abortable (as seen after a broker bounce)
    plain = FakeProducer(
        send_offsets=[KafkaError(KafkaError.NOT_COORDINATOR, "x")],
        abort=[RETRIABLE_NOT_COORDINATOR],
    )
    assert not _run(_txn(plain))
    assert plain.calls == ["begin", "send_offsets", "abort", "abort"]


@pytest.mark.parametrize(
    "code", [KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH]
)
def test_a_fenced_worker_exits_with_one_line(code: int) -> None:
    producer = FakeProducer(commit=[KafkaError(code, "fenced", fatal=True)])
    with pytest.raises(ProcessorFenced, match="was fenced") as raised:
        _run(_txn(producer))
    assert "\n" not in str(raised.value)
    assert producer.calls == ["begin", "send_offsets", "commit"]


def test_a_fatal_error_exits_and_a_stop_aborts_without_retrying() -> None:
    fatal = FakeProducer(send_offsets=[KafkaError(KafkaError._FAIL, "boom", fatal=True)])
    with pytest.raises(TransactionFailed, match="restart the worker"):
        _run(_txn(fatal))
    stopping = FakeProducer(commit=[RETRIABLE_NOT_COORDINATOR] * 50)
    assert not _run(_txn(stopping, stopping=lambda: True))
    assert stopping.calls == ["begin", "send_offsets", "commit", "abort"]
    nothing_open = FakeProducer(
        begin=[KafkaError(KafkaError._STATE, "no")], abort=[KafkaError(KafkaError._STATE, "no txn")]
    )
    assert not _run(_txn(nothing_open))


# -- registry outages are waits ---------------------------------------------------------------
class FakeRegistry:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.fail: list[Exception] = []
        self.asked = 0

    def get_schema(self, schema_id: int) -> Any:
        self.asked += 1
        if self.fail:
            raise self.fail.pop(0)
        if schema_id != 1:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return type("S", (), {"schema_str": orjson.dumps(self.schema).decode()})()

    def register_schema(self, subject: str, schema: Any) -> int:
        return 1


def test_an_unanswered_registry_is_a_wait_and_a_missing_schema_is_bad_input() -> None:
    schema = load_schema("consent_changed")
    registry = FakeRegistry(schema)
    data = WireEncoder(registry, "s", schema).encode(grant("NY-1", NOW).to_avro())  # type: ignore[arg-type]
    decoder = WireDecoder(
        registry,  # type: ignore[arg-type]
        reader_schema=schema,
        record_name="org.hallpass.consent.ConsentChanged",
    )
    registry.fail = [
        httpx.ConnectError("Connection refused"),
        SchemaRegistryError(503, 50301, "unavailable"),
    ]
    for _ in range(2):
        with pytest.raises(RegistryUnavailable):
            decoder.decode(data)
    assert decoder.decode(data)["student_id"] == "NY-1"  # failures are not cached
    decoder.decode(data)
    assert registry.asked == 3  # the success is
    with pytest.raises(WireFormatError, match="HTTP 404"):
        decoder.decode(data[:1] + (2).to_bytes(4, "big") + data[5:])


def test_a_record_of_another_schema_is_bad_input() -> None:
    registry = FakeRegistry(load_schema("student_record_changed"))
    data = WireEncoder(registry, "s", load_schema("student_record_changed")).encode(  # type: ignore[arg-type]
        change("NY-1", NOW, "c-1")
    )
    decoder = WireDecoder(
        registry,  # type: ignore[arg-type]
        record_name="org.hallpass.consent.ConsentChanged",
    )
    with pytest.raises(WireFormatError, match=r"not a org\.hallpass\.consent\.ConsentChanged"):
        decoder.decode(data)


def test_only_records_written_with_the_student_schema_itself_skip_the_type_check() -> None:
    """The decoder says a change conforms (its types are the schema's by construction, the
    handler's type check is skipped) only for the student schema itself, docs and defaults
    aside; a record of another version (a field of another type) is still checked."""
    schema = load_schema("student_record_changed")
    record = change("NY-1", NOW, "c-1")
    same = WireEncoder(FakeRegistry(schema), "s", schema).encode(record)  # type: ignore[arg-type]
    decoder = WireDecoder(FakeRegistry(schema), expected_schema=schema)  # type: ignore[arg-type]
    assert decoder.decode(same)["student_id"] == "NY-1" and decoder.conforms(same)
    assert not decoder.conforms(b"\x00\x00\x00\x00\x02" + same[5:])  # not decoded: unknown
    assert not decoder.conforms(None) and not decoder.conforms(b"{}")

    documented = orjson.loads(orjson.dumps(schema))
    documented["doc"] = "the same schema, documented otherwise"
    decoder = WireDecoder(FakeRegistry(documented), expected_schema=schema)  # type: ignore[arg-type]
    decoder.decode(same)
    assert decoder.conforms(same)

    other = orjson.loads(orjson.dumps(schema))
    [names] = [f for f in other["fields"] if f["name"] == "names"]
    inner = names["type"][1] if isinstance(names["type"], list) else names["type"]
    [first] = [f for f in inner["fields"] if f["name"] == "first_name"]
    first["type"] = ["null", "long"]  # another version: a name of another type
    record["names"]["first_name"] = 7
    data = WireEncoder(FakeRegistry(other), "s", other).encode(record)  # type: ignore[arg-type]
    decoder = WireDecoder(FakeRegistry(other), expected_schema=schema)  # type: ignore[arg-type]
    assert decoder.decode(data)["names"]["first_name"] == 7
    assert not decoder.conforms(data)


assert NEVER_SHARE  # the harness strips them (the redaction test relies on it)


class _FailsOnce:
    """Transactions whose first commit fails (the batch is aborted), the next ones succeed."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, produce: Callable[[], None], offsets: Any, group: Any) -> bool:
        self.runs += 1
        if self.runs == 1:
            return False
        produce()
        return True


def test_a_batch_aborted_and_decided_again_is_counted_once() -> None:
    """The loop's counts (the metrics' source) after a batch whose transaction was aborted and
    which was then decided again: each record counted once, as after one clean commit."""
    clean, retried = Bus(), Bus()
    for bus in (clean, retried):
        for student in ("NY-001", "NY-002", "NY-003"):
            bus.change(change(student, NOW - 1000, f"c-{student}"))
    clean.settle()

    worker = retried.cluster.workers[0]
    changes = retried.cluster.topics.changes
    records = [r for p in range(PARTITIONS) for r in retried.cluster.broker.log(changes, p)]
    loop = ProcessorLoop(
        Connection(bootstrap_servers="127.0.0.1:1", schema_registry_url="http://127.0.0.1:1"),
        [changes],
        worker.handler,
    )
    try:
        loop.tables = worker.tables
        loop._txn = _FailsOnce()  # type: ignore[assignment]
        loop._produce_all = lambda outputs, changes: None  # type: ignore[method-assign]
        batch = [_Msg(r) for r in records]
        loop._process(batch)  # type: ignore[arg-type]  # aborted: rolled back
        loop._process(batch)  # type: ignore[arg-type]  # decided again, committed
    finally:
        loop._close()
    assert len(records) == 3
    assert worker.handler.counters == clean.cluster.workers[0].handler.counters
    assert worker.handler.counters.changes == 3
