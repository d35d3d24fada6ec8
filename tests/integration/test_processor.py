"""The consent-aware processor on the real broker.

A simulated start of the school year of two districts (2,500 students, 10 school days, with
consents, opt-outs, a district opting out of a partner, withdrawals) goes through the
processor, then a few parents' decisions recorded with ``hallpass consent``. The tests check
what each partner topic, the notices, the audit ledger, the processor's changelog and a
parent's disclosure report hold afterwards, and that SIGKILLing ``hallpass process`` changes
nothing a partner or the ledger sees.

Every run lives under its own topic prefix (``HALLPASS_TOPIC_PREFIX``): its topics, registry
subjects and processor group are its own, so it shares the broker with other runs and the
demo. They are deleted at the end.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import random
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.partner.auditor import read_ledger
from connectors.partner.vendor import VendorCopy, sync_partner_topic
from connectors.simulation.stream import CHANGES_TOPIC, CONSENT_TOPIC, SimEvent, simulate
from connectors.source.publisher import EventPublisher
from streams.config import Connection
from streams.kafka.names import Topics
from streams.kafka.wire import WireDecoder, parse, without_logical_types
from streams.policy.catalog import FieldInfo, field_catalog, load_schema, never_share_paths
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.contracts import (
    Basis,
    Contract,
    load_contracts,
    lock_contracts,
    resolve_allowances,
)
from streams.policy.decision import WithheldReason, partner_key
from streams.policy.majority import MajorityAges, record_majority_at
from streams.policy.views import ENVELOPE_FIELDS
from streams.processor.app import apply_contracts, run_processor
from streams.processor.clock import ManualClock
from streams.processor.routing import partition_for
from streams.processor.state import unpack
from tests.eventually import eventually
from tests.kafka_helpers import Read, latest_by_key, read_topic
from tests.processor_helpers import (
    Expected,
    OpenTransactions,
    ProcessorProcess,
    committed_offsets,
    count_records,
    drop_prefix,
    event_time,
    hallpass,
    never_share_values,
    non_null_leaves,
    schema_leaf_paths,
)
from tests.provenance import GUARDIAN_SIGNED, STUDENT_SIGNED

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
SEED, STUDENTS, DAYS, DISTRICTS = 4242, 2500, 10, 2
SOURCE_SYSTEM = "t-processor-integration"
LEARNWELL, MEASURELY, CAREWELL, SUNSET = "learnwell", "measurely", "carewell-health", "sunset"
PARTNERS = (LEARNWELL, MEASURELY, CAREWELL, SUNSET)
#: A partner whose contract ends in the first school week (the simulation starts 2026-09-08).
SUNSET_CONTRACT = """\
partner: sunset
display_name: Sunset Rostering (contract ends 2026-09-10)
version: 1
purpose_code: rostering
purpose: Rostering under a contract that ends in the first week of school.
valid_from: 2026-07-01
valid_until: 2026-09-10
laws: [FERPA]
principal: User:sunset
pseudonymous_ids: true
allow:
  - category: student_name
    basis: school_official
  - field: enrollment.grade_level
    basis: directory
"""
#: The first phase stops before the sunset contract ends, so that partner holds records the
#: contract end must retract, whatever order the processor reads its inputs in.
PHASE_CUT = int(datetime(2026, 9, 10, tzinfo=UTC).timestamp() * 1000)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Students whose parents decide something with ``hallpass consent`` after the
    simulation, each holding records of the partners concerned at that moment."""

    revoke: str  # revokes the carewell-health consent
    partner_opt_out: str  # opts out of learnwell
    all_opt_out: str  # opts out of all sharing
    directory: str  # opts out of directory disclosure


@dataclass
class BusRun:
    conn: Connection
    topics: Topics
    data_dir: Path
    contracts_dir: Path
    secrets_file: Path
    catalog: Mapping[str, FieldInfo]
    contracts: dict[str, Contract]
    events: list[SimEvent]
    cli_events: list[dict[str, Any]]
    expected: Expected
    targets: Targets
    #: phase -> partner -> live key -> decoded record, after phase 1 and after phase 2
    live_after: dict[str, dict[str, dict[bytes, dict[str, Any]]]]
    #: partner -> the vendor's local copy, synced after each phase
    copies: dict[str, VendorCopy]
    #: phase -> partner -> keys the vendor's copy held after it
    held_after: dict[str, dict[str, set[str]]]
    #: the processing time of the last phase (the expected state is the one at that time)
    final_clock: int
    _reads: dict[str, list[Read]] = field(default_factory=dict)
    _keys: dict[str, dict[bytes, str]] = field(default_factory=dict)
    _histories: dict[str, dict[bytes | None, list[Read]]] = field(default_factory=dict)

    def allowances(self, partner: str) -> dict[str, Basis]:
        return resolve_allowances(self.contracts[partner], self.catalog)

    def reads(self, topic: str) -> list[Read]:
        if topic not in self._reads:
            self._reads[topic] = read_topic(self.conn, topic)
        return self._reads[topic]

    def history(self, partner: str, key: bytes) -> list[Read]:
        """Every record ``partner`` received under ``key``, in order."""
        if partner not in self._histories:
            by_key: dict[bytes | None, list[Read]] = {}
            for read in sorted(
                self.reads(self.topics.partner(partner)), key=lambda r: (r.partition, r.offset)
            ):
                by_key.setdefault(read.key, []).append(read)
            self._histories[partner] = by_key
        return self._histories[partner].get(key, [])

    def secret(self, partner: str) -> bytes:
        """The pseudonym secret the processor created in the data dir."""
        return bytes.fromhex(json.loads(self.secrets_file.read_text())[partner])

    def key(self, partner: str, student: str) -> bytes:
        return partner_key(student, self.secret(partner)).encode()

    def student_of(self, partner: str) -> dict[bytes, str]:
        if partner not in self._keys:
            secret = self.secret(partner)
            self._keys[partner] = {
                partner_key(s, secret).encode(): s for s in self.expected.students
            }
        return self._keys[partner]

    def live(self, partner: str) -> dict[bytes, dict[str, Any]]:
        return live_records(self.conn, self.reads(self.topics.partner(partner)))

    @property
    def change_event_ids(self) -> set[str]:
        return {e.value["event_id"] for e in self.events if e.topic == CHANGES_TOPIC}


#: envelope fields that differ per record: the partner's own record id and the day the view
#: changed (what partners hold is compared without them)
PER_RECORD = ("event_id", "occurred_at")


def live_records(conn: Connection, reads: list[Read]) -> dict[bytes, dict[str, Any]]:
    """What a compacted partner topic holds: key -> decoded record without its per-record
    envelope fields, tombstoned keys left out."""
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    return {
        k: _without_envelope(decoder.decode(v))
        for k, v in latest_by_key(reads).items()
        if v is not None
    }


def _without_envelope(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in PER_RECORD}


def publish(
    conn: Connection, topics: Topics, events: Iterable[tuple[str, str, Mapping[str, Any]]]
) -> None:
    publisher = EventPublisher(
        conn, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
    )
    for topic, key, value in events:
        publisher.publish(topics.name(topic), key, value)
    publisher.close()


def process(
    conn: Connection, topics: Topics, contracts_dir: Path, secrets_file: Path, now_ms: int
) -> None:
    """Process until idle, deciding at ``now_ms`` (the simulation's dates are in the past)."""
    run_processor(
        conn,
        contracts_dir,
        secrets_file,
        until_idle=True,
        worker=0,
        note=lambda _m: None,
        topics=topics,
        clock=ManualClock(now_ms),
    )


def sync_copies(
    conn: Connection, topics: Topics, copies: dict[str, VendorCopy]
) -> dict[str, set[str]]:
    """What a vendor does: pull its topic into its local copy (tombstones delete)."""
    for partner, local in copies.items():
        sync_partner_topic(conn, topics.partner(partner), local, f"{topics.prefix}{partner}-v")
    return {partner: local.keys() for partner, local in copies.items()}


def contracts_dir_with_sunset(base: Path) -> Path:
    out = base / "contracts"
    out.mkdir()
    for path in sorted((REPO / "deploy" / "contracts").glob("*.yaml")):
        shutil.copy(path, out / path.name)
    (out / f"{SUNSET}.yaml").write_text(SUNSET_CONTRACT)
    lock_contracts(out, field_catalog(load_schema("student_record_changed")), SUNSET)
    return out


def choose_targets(
    live: Mapping[str, Mapping[bytes, Mapping[str, Any]]],
    student_of: Mapping[str, Mapping[bytes, str]],
) -> Targets:
    held = {p: {student_of[p][k] for k in live[p]} for p in live}
    used: set[str] = set()

    def pick(candidates: set[str], why: str) -> str:
        left = sorted(candidates - used)
        assert left, f"the simulation has no student who {why}"
        used.add(left[0])
        return left[0]

    revoke = pick(held[CAREWELL], "holds a carewell-health consent")
    all_out = pick(
        held[CAREWELL] & held[LEARNWELL] & held[MEASURELY], "is shared with all three partners"
    )
    partner_out = pick(held[LEARNWELL] & held[MEASURELY], "is shared with learnwell, measurely")
    with_grade = {
        student_of[LEARNWELL][k]
        for k, record in live[LEARNWELL].items()
        if (record.get("enrollment") or {}).get("grade_level") is not None
    }
    directory = pick(with_grade & held[MEASURELY], "has a grade level on learnwell")
    return Targets(revoke, partner_out, all_out, directory)


@pytest.fixture(scope="module")
def run(bus: Connection, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusRun]:
    """One run of the processor over the simulation, in three phases, each processed until
    idle: the events before the sunset contract ends; the rest; four parents' decisions
    recorded with the CLI after the last simulated event. A vendor copy of each partner topic
    is synced after the first two."""
    tmp = tmp_path_factory.mktemp("processor")
    topics = Topics(f"t.proc.{uuid.uuid4().hex[:10]}.")
    contracts_dir = contracts_dir_with_sunset(tmp)
    data_dir = tmp / "data"
    secrets_file = data_dir / "partner-secrets.json"
    catalog = field_catalog(load_schema("student_record_changed"))
    contracts = {c.partner: c for c in load_contracts(contracts_dir, catalog)}
    events = list(simulate(STUDENTS, SEED, DAYS, districts=DISTRICTS, source_system=SOURCE_SYSTEM))
    times = [event_time(e.value) for e in events]
    assert times == sorted(times), "the simulator yields events in time order"
    phase1 = [e for e in events if event_time(e.value) < PHASE_CUT]
    phase2 = events[len(phase1) :]
    started = time.monotonic()

    def lap(what: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {what}")

    try:
        applied = apply_contracts(bus, contracts_dir, topics, secrets_file=secrets_file)
        assert sorted(a.partner for a in applied) == sorted(PARTNERS)

        publish(bus, topics, phase1)
        lap("published phase 1")
        process(bus, topics, contracts_dir, secrets_file, PHASE_CUT)
        lap("processed phase 1")
        copies = {p: VendorCopy() for p in PARTNERS}
        held_after = {"phase1": sync_copies(bus, topics, copies)}
        live_after = {
            "phase1": {p: live_records(bus, read_topic(bus, topics.partner(p))) for p in PARTNERS}
        }

        publish(bus, topics, phase2)
        lap("published phase 2")
        process(bus, topics, contracts_dir, secrets_file, max(times))
        lap("processed phase 2")
        held_after["phase2"] = sync_copies(bus, topics, copies)
        live_after["phase2"] = {
            p: live_records(bus, read_topic(bus, topics.partner(p))) for p in PARTNERS
        }

        # parents decide after the last simulated event, with the CLI
        sim_changes = [e.value for e in events if e.topic == CHANGES_TOPIC]
        sim_consent = [e.value for e in events if e.topic == CONSENT_TOPIC]
        partial = Expected.of(catalog, sim_changes, sim_consent)
        secrets = json.loads(secrets_file.read_text())
        student_of = {
            p: {partner_key(s, bytes.fromhex(secrets[p])).encode(): s for s in partial.students}
            for p in PARTNERS
        }
        targets = choose_targets(live_after["phase2"], student_of)
        after = partial.end + 60_000

        def consent(*args: str, student: str, minutes: int) -> None:
            hallpass(
                bus,
                topics,
                data_dir,
                "consent",
                *args,
                "--student",
                student,
                "--district",
                partial.district_of[student],
                "--effective-at",
                str(after + minutes * 60_000),
            )

        consent("revoke", "--partner", CAREWELL, student=targets.revoke, minutes=0)
        consent("opt-out", "--partner", LEARNWELL, student=targets.partner_opt_out, minutes=1)
        consent("opt-out", student=targets.all_opt_out, minutes=2)
        consent("directory-opt-out", student=targets.directory, minutes=3)
        lap("published the parents' decisions with the CLI")
        final_clock = after + 3 * 60_000
        process(bus, topics, contracts_dir, secrets_file, final_clock)
        lap("processed them")

        decoder = WireDecoder(SchemaRegistryClient(bus.registry_config()))
        simulated = {v["event_id"] for v in sim_consent}
        cli_events = [
            v
            for v in (decoder.decode(r.value) for r in read_topic(bus, topics.consent) if r.value)
            if v["event_id"] not in simulated
        ]
        assert len(cli_events) == 4
        yield BusRun(
            conn=bus,
            topics=topics,
            data_dir=data_dir,
            contracts_dir=contracts_dir,
            secrets_file=secrets_file,
            catalog=catalog,
            contracts=contracts,
            events=events,
            cli_events=cli_events,
            expected=Expected.of(catalog, sim_changes, sim_consent + cli_events),
            targets=targets,
            live_after=live_after,
            copies=copies,
            held_after=held_after,
            final_clock=final_clock,
        )
    finally:
        drop_prefix(bus, topics.prefix)


# --- 1. schemas and never-share fields ------------------------------------------------------------


def test_partner_records_decode_with_the_registered_view_and_carry_only_allowed_fields(
    run: BusRun,
) -> None:
    registry = SchemaRegistryClient(run.conn.registry_config())
    never_share = never_share_paths(run.catalog)
    for partner in PARTNERS:
        topic = run.topics.partner(partner)
        latest = registry.get_latest_version(f"{topic}-value")
        schema = json.loads(latest.schema.schema_str or "{}")
        allowed = set(run.allowances(partner)) | set(ENVELOPE_FIELDS)
        assert schema_leaf_paths(schema) == allowed, partner
        assert not schema_leaf_paths(schema) & never_share, partner
        parsed = parse(without_logical_types(schema))

        values = [r for r in run.reads(topic) if r.value is not None]
        assert len(values) >= 100, f"{partner} received almost nothing: {len(values)}"
        outside: Counter[str] = Counter()
        for read in values:
            assert read.value is not None
            assert read.value[0] == 0, "Confluent wire format"
            assert int.from_bytes(read.value[1:5], "big") == latest.schema_id, (
                f"{partner}: a record written with another schema than the registered view"
            )
            record = fastavro.schemaless_reader(io.BytesIO(read.value[5:]), parsed, parsed)
            assert isinstance(record, dict)
            assert record["partner_student_key"].encode() == read.key
            assert record["contract_version"] == run.contracts[partner].version
            outside.update(non_null_leaves(record, allowed) - allowed)
        assert not outside, f"{partner} received fields its contract does not allow: {outside}"


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_never_share_values_reach_no_output_and_no_state(run: BusRun) -> None:
    secrets = never_share_values(run.events, never_share_paths(run.catalog))
    assert len(secrets) > 100, "the simulation should carry SSNs and government ids"
    decoder = WireDecoder(SchemaRegistryClient(run.conn.registry_config()))

    # control: the input does carry them, and the search finds them there
    found_in_input: set[str] = set()
    for read in run.reads(run.topics.changes):
        found_in_input.update(_strings(decoder.decode(read.value)))
    assert secrets <= found_in_input

    avro_topics = [
        run.topics.audit,
        *(run.topics.partner(p) for p in PARTNERS),
        *(run.topics.notices(p) for p in PARTNERS),
    ]
    for topic in avro_topics:
        reads = run.reads(topic)
        assert reads, f"{topic} is empty"
        seen = {s for r in reads if r.value is not None for s in _strings(decoder.decode(r.value))}
        leaked = seen & secrets
        assert not leaked, f"never-share values on {topic}: {sorted(leaked)[:5]}"
        blob = b"".join(r.value for r in reads if r.value is not None)
        long_text = sorted(s for s in secrets if len(s) > 30)  # free-text notes, as substrings
        assert not [s for s in long_text if s.encode() in blob], topic

    never_share = never_share_paths(run.catalog)
    for _, record in read_ledger(run.conn, run.topics.audit):
        assert not set(record["fields"]) & never_share

    # the processor's own tables: records are stored stripped (4-digit PINs included)
    stored_records = 0
    for topic in (run.topics.state, run.topics.districts):
        for read in run.reads(topic):
            if read.value is None:
                continue
            value = unpack(read.value)
            leaked = set(_strings(value)) & secrets
            assert not leaked, f"never-share values in {topic}: {sorted(leaked)[:5]}"
            if (read.key or b"").startswith(b"r|"):
                stored_records += 1
                restricted = value.get("restricted") or {}
                assert all(v is None for v in restricted.values()), restricted
    assert stored_records >= STUDENTS
    assert not run.reads(run.topics.changes_dlq), "the simulated input has no bad event"


# --- 2. consent, opt-outs and the fields each partner holds -----------------------------------


def _live_students(run: BusRun, partner: str) -> dict[str, set[str]]:
    allowed = set(run.allowances(partner)) | set(ENVELOPE_FIELDS)
    student_of = run.student_of(partner)
    return {
        student_of[key]: non_null_leaves(record, allowed) - set(ENVELOPE_FIELDS)
        for key, record in run.live(partner).items()
    }


def test_opted_out_students_hold_no_live_record(run: BusRun) -> None:
    exp = run.expected
    for partner in (LEARNWELL, MEASURELY, CAREWELL):
        live = _live_students(run, partner)
        statuses = {s: exp.status(s, partner) for s in exp.students}
        all_out = {s for s, st in statuses.items() if st.parent_opted_out_all}
        partner_out = {s for s, st in statuses.items() if st.parent_opted_out_partner}
        district_out = {s for s in exp.students if exp.district_opted_out(s, partner)}
        assert len(all_out) >= 5
        assert not all_out & live.keys(), f"{partner}: opted out of all sharing, still held"
        assert not partner_out & live.keys(), f"{partner}: opted out of {partner}, still held"
        assert not district_out & live.keys(), f"{partner}: district opted out, still held"
        assert not exp.deleted & live.keys(), f"{partner}: withdrawn students still held"
        if partner == MEASURELY:
            assert len(district_out) >= 500, "one of the two districts opts out of measurely"
        if partner == LEARNWELL:
            assert run.targets.partner_opt_out in partner_out


def test_each_partner_holds_exactly_the_fields_the_students_consent_permits(
    run: BusRun,
) -> None:
    exp = run.expected
    for partner in PARTNERS:
        contract, allowances = run.contracts[partner], run.allowances(partner)
        live = _live_students(run, partner)
        expected = {
            s: f
            for s in exp.students
            if (f := exp.view_fields(s, contract, allowances)) is not None
        }
        missing, extra = sorted(expected.keys() - live.keys()), sorted(live.keys() - expected)
        assert not missing and not extra, (
            f"{partner}: {len(missing)} students missing {missing[:5]}, {len(extra)} extra "
            f"{extra[:5]}"
        )
        wrong = {s: (sorted(live[s] ^ expected[s])) for s in live if live[s] != expected[s]}
        assert not wrong, f"{partner}: fields differ for {len(wrong)}: {list(wrong.items())[:3]}"


def test_no_value_outside_the_contracts_links_two_partners(run: BusRun) -> None:
    """Joining every pair of partner topics (records, notices, headers) on every value that is
    not a contracted data field finds nothing: ids are the partner's own, times are days. Left
    out of the join, as a closed vocabulary shared by many students: reason codes, category
    and field names, contract versions, and the day-resolution times (checked to be days)."""
    decoder = WireDecoder(SchemaRegistryClient(run.conn.registry_config()))
    source_ids = run.change_event_ids | {e.value["event_id"] for e in run.events}
    values: dict[str, dict[bytes, set[str]]] = {}
    for partner in PARTNERS:
        per_key = values[partner] = {}
        for read in run.reads(run.topics.partner(partner)):
            assert read.timestamp % 86_400_000 == 0, "a Kafka timestamp finer than a day"
            found = per_key.setdefault(read.key or b"", {(read.key or b"").decode()})
            for name, value in read.headers.items():
                if name not in ("hallpass.deletion.reason", "hallpass.contract.version"):
                    found.add(value.decode())
            if read.value is not None:
                view = decoder.decode(read.value)
                assert view["occurred_at"] % 86_400_000 == 0, "a time finer than a day"
                assert view["event_id"] not in source_ids, "a source event id reached a partner"
                found.update((view["event_id"], view["partner_student_key"]))
        for read in run.reads(run.topics.notices(partner)):
            assert read.timestamp % 86_400_000 == 0, "a Kafka timestamp finer than a day"
            notice = decoder.decode(read.value)
            assert notice["retracted_at"] % 86_400_000 == 0, "a time finer than a day"
            per_key.setdefault(read.key or b"", set()).update(
                (notice["event_id"], notice["partner_student_key"])
            )
    joined = 0
    for a, b in itertools.combinations(PARTNERS, 2):
        for student in run.expected.students:
            found_a = values[a].get(run.key(a, student), set())
            found_b = values[b].get(run.key(b, student), set())
            joined += bool(found_a and found_b)
            assert not found_a & found_b, f"{a} and {b} share {found_a & found_b} of {student}"
    assert joined > STUDENTS, "partners received records of the same students"


def test_directory_opt_out_removes_exactly_the_directory_fields(run: BusRun) -> None:
    allowances = run.allowances(LEARNWELL)
    directory = {p for p, b in allowances.items() if b is Basis.DIRECTORY}
    assert directory == {"enrollment.grade_level"}
    live = _live_students(run, LEARNWELL)
    opted = {s for s in live if run.expected.status(s, LEARNWELL).directory_opt_out}
    assert len(opted) >= 10
    assert all(not live[s] & directory for s in opted)
    assert sum(1 for s in live.keys() - opted if live[s] & directory) >= len(live) // 2

    # the CLI's directory opt-out: the same record, without the grade level
    student = run.targets.directory
    key = run.key(LEARNWELL, student)
    before = copy.deepcopy(run.live_after["phase2"][LEARNWELL][key])
    after = run.live(LEARNWELL)[key]
    assert before["enrollment"]["grade_level"] is not None
    assert after["enrollment"]["grade_level"] is None
    before["enrollment"]["grade_level"] = None
    assert after == before
    decoder = WireDecoder(SchemaRegistryClient(run.conn.registry_config()))
    notices = [
        decoder.decode(r.value) for r in run.reads(run.topics.notices(LEARNWELL)) if r.key == key
    ]
    assert [(n["reason"], n["categories"], n["fields"]) for n in notices] == [
        ("DIRECTORY_OPT_OUT", ["enrollment"], ["enrollment.grade_level"])
    ], "a partial retraction comes with a notice naming what to delete"
    assert run.key(MEASURELY, student) in run.live(MEASURELY), (
        "a directory opt-out is no opt-out of a partner"
    )


def test_consent_fields_reach_carewell_only_under_a_live_grant(run: BusRun) -> None:
    live = _live_students(run, CAREWELL)
    assert len(live) >= 20
    for student, fields in live.items():
        granted = run.expected.status(student, CAREWELL).live_consent_categories
        categories = {run.catalog[f].category for f in fields}
        assert granted, f"{student} on carewell-health without a live consent"
        assert categories <= granted, f"{student}: {categories - granted} not consented"
    assert run.targets.revoke not in live


# --- 3. retraction: tombstones, notices, vendor copies ------------------------------------------


def _reason(read: Read) -> str:
    return read.headers.get("hallpass.deletion.reason", b"").decode()


def test_every_tombstone_carries_a_reason_and_a_deletion_notice(run: BusRun) -> None:
    reasons = {r.value for r in WithheldReason}
    decoder = WireDecoder(SchemaRegistryClient(run.conn.registry_config()))
    for partner in PARTNERS:
        tombstones = Counter(
            (r.key, _reason(r)) for r in run.reads(run.topics.partner(partner)) if r.value is None
        )
        assert tombstones, f"{partner}: no retraction at all"
        assert {reason for _, reason in tombstones} <= reasons
        notices: Counter[tuple[bytes, str]] = Counter()
        for read in run.reads(run.topics.notices(partner)):
            assert read.timestamp % 86_400_000 == 0, "a Kafka timestamp finer than a day"
            notice = decoder.decode(read.value)
            assert notice["partner"] == partner
            assert notice["reason"] in reasons
            assert bool(notice["categories"]) == bool(notice["fields"])
            if not notice["fields"]:  # of the whole record: with a tombstone
                notices[(notice["partner_student_key"].encode(), notice["reason"])] += 1
        assert notices == tombstones, partner


def test_revocation_and_opt_outs_retract_what_partners_held(run: BusRun) -> None:
    t = run.targets
    expected = [
        (t.revoke, CAREWELL, "CONSENT_REVOKED"),
        (t.partner_opt_out, LEARNWELL, "PARTNER_OPT_OUT"),
        *((t.all_opt_out, p, "ALL_OPT_OUT") for p in (LEARNWELL, MEASURELY, CAREWELL)),
    ]
    # and the simulated parents' decisions after the first phase, for what was held then
    sim = [
        e.value
        for e in run.events
        if e.topic == CONSENT_TOPIC
        and event_time(e.value) >= PHASE_CUT
        and e.value["kind"] in ("REVOKE", "PARTNER_OPT_OUT", "ALL_OPT_OUT")
    ]
    for value in sim:
        student = value["student_id"]
        for partner in [value["partner"]] if value["partner"] else [LEARNWELL, MEASURELY, CAREWELL]:
            if (
                run.key(partner, student) in run.live_after["phase1"][partner]
                and run.expected.view_fields(
                    student, run.contracts[partner], run.allowances(partner)
                )
                is None
            ):
                expected.append((student, partner, ""))
    assert len(expected) > 5

    final = sync_copies(run.conn, run.topics, run.copies)
    for student, partner, reason in expected:
        key = run.key(partner, student)
        history = run.history(partner, key)
        assert history and history[-1].value is None, f"{student} still live on {partner}"
        if reason:
            assert _reason(history[-1]) == reason
            assert key.decode() in run.held_after["phase2"][partner]
        assert key.decode() not in final[partner], f"{partner}'s copy still holds {student}"
    # the partner opt-out concerns learnwell only
    assert run.key(MEASURELY, t.partner_opt_out) in run.live(MEASURELY)
    for partner in PARTNERS:
        assert final[partner] == {k.decode() for k in run.live(partner)}, (
            f"{partner}: the vendor's copy is not what the topic holds"
        )


def test_contract_end_retracts_every_student_the_partner_held(run: BusRun) -> None:
    held = run.live_after["phase1"][SUNSET]
    assert len(held) >= STUDENTS * 0.9, "the sunset partner held the roster before its end"
    assert run.held_after["phase1"][SUNSET] == {k.decode() for k in held}
    assert not run.live(SUNSET), "records outlive the contract"
    for key in held:
        history = run.history(SUNSET, key)
        assert history[-1].value is None
        assert _reason(history[-1]) == "CONTRACT_ENDED"
    final = sync_copies(run.conn, run.topics, {SUNSET: run.copies[SUNSET]})
    assert final[SUNSET] == set(), "the vendor's copy keeps students after the contract end"


# --- 4. nothing twice; the audit ledger and the parent's report -----------------------------------


def _resent(conn: Connection, reads: list[Read]) -> list[bytes | None]:
    """Keys that received the record they already held (its fields and key: the per-record
    envelope aside), or a tombstone of nothing: something sent when nothing changed."""
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    held: dict[bytes | None, dict[str, Any] | None] = {}
    twice = []
    for read in sorted(reads, key=lambda r: (r.partition, r.offset)):
        value = None if read.value is None else _without_envelope(decoder.decode(read.value))
        if held.get(read.key) == value:  # also a tombstone of a key never held
            twice.append(read.key)
        held[read.key] = value
    return twice


def test_no_partner_receives_a_record_it_already_holds(run: BusRun) -> None:
    for partner in PARTNERS:
        twice = _resent(run.conn, run.reads(run.topics.partner(partner)))
        assert not twice, f"{partner} received {len(twice)} records it held, e.g. {twice[:3]}"


def _ledger_problems(
    ledger: list[tuple[bytes | None, dict[str, Any]]], changes_topic: str, change_ids: set[str]
) -> list[str]:
    """The ledger rule: at most one decision per (change event, partner), recorded only when
    it told the partner something or withheld for a privacy reason (``_ledger_matches_topics``
    and ``_resent`` check the first half), every partial retraction beside the disclosure of
    its reduced view, every decision id once, every record keyed by its student."""
    problems = []
    partial = [r for _, r in ledger if r["decision"] == "RETRACTED" and r["fields"]]
    about_changes = [
        r
        for _, r in ledger
        if r["event_id"] in change_ids and not (r["decision"] == "RETRACTED" and r["fields"])
    ]
    per_change = Counter(r["decision_id"] for r in about_changes)
    if elsewhere := [r for r in about_changes if r["source_topic"] != changes_topic]:
        problems.append(f"{len(elsewhere)} change decisions name another source topic")
    wanted = {f"{event_id}:{partner}" for event_id in change_ids for partner in PARTNERS}
    if extra := per_change.keys() - wanted:
        problems.append(f"{len(extra)} decisions about unknown events: {sorted(extra)[:3]}")
    if dupes := {d: n for d, n in per_change.items() if n > 1}:
        problems.append(f"{len(dupes)} decisions recorded twice: {list(dupes.items())[:3]}")
    if len(per_change) < len(change_ids):
        problems.append(f"only {len(per_change)} decisions for {len(change_ids)} changes")
    unchanged = [
        r
        for r in about_changes
        if r["decision"] == "WITHHELD" and r["reason"] == WithheldReason.STUDENT_DELETED.value
    ]
    if unchanged:
        problems.append(f"{len(unchanged)} deleted students never held recorded as withheld")
    disclosed = {r["decision_id"] for _, r in ledger if r["decision"] == "DISCLOSED"}
    if alone := [
        r["decision_id"] for r in partial if r["decision_id"].rsplit(":", 1)[0] not in disclosed
    ]:
        problems.append(f"{len(alone)} partial retractions without a reduced view: {alone[:3]}")
    every = Counter(r["decision_id"] for _, r in ledger)
    if dupes2 := {d: n for d, n in every.items() if n > 1}:
        problems.append(f"{len(dupes2)} decision ids not unique: {list(dupes2.items())[:3]}")
    for key, record in ledger:
        if key != record["student_id"].encode():
            problems.append(f"ledger record keyed {key!r} is about {record['student_id']}")
            break
    return problems


def _ledger_matches_topics(
    ledger: list[tuple[bytes | None, dict[str, Any]]], topic_reads: Mapping[str, list[Read]]
) -> list[str]:
    """Every record a partner got is one DISCLOSED decision, every tombstone one RETRACTED."""
    problems = []
    for partner, reads in topic_reads.items():
        ledger_counts = Counter(
            (r["partner_student_key"], r["decision"])
            for _, r in ledger
            if r["partner"] == partner
            and (r["decision"] == "DISCLOSED" or (r["decision"] == "RETRACTED" and not r["fields"]))
        )
        topic_counts = Counter(
            ((r.key or b"").decode(), "DISCLOSED" if r.value is not None else "RETRACTED")
            for r in reads
        )
        if ledger_counts != topic_counts:
            diff = (ledger_counts - topic_counts) + (topic_counts - ledger_counts)
            problems.append(f"{partner}: ledger and topic disagree on {list(diff.items())[:3]}")
    return problems


def test_ledger_holds_one_decision_per_change_and_partner(run: BusRun) -> None:
    ledger = list(read_ledger(run.conn, run.topics.audit))
    assert not _ledger_problems(ledger, run.topics.changes, run.change_event_ids)
    assert not _ledger_matches_topics(
        ledger, {p: run.reads(run.topics.partner(p)) for p in PARTNERS}
    )
    by_id = {r["decision_id"]: r for _, r in ledger}
    checked = 0
    for event in run.events[-200:]:
        if event.topic == CHANGES_TOPIC:
            for partner in PARTNERS:
                record = by_id.get(f"{event.value['event_id']}:{partner}")
                if record is not None:
                    checked += 1
                    assert record["student_id"] == event.key
                    assert record["event_id"] == event.value["event_id"]
    assert checked > 50


def test_disclosure_report_agrees_with_the_partner_topics(run: BusRun) -> None:
    t = run.targets
    district_out = next(
        s
        for s in sorted(run.expected.students)
        if run.expected.district_opted_out(s, MEASURELY)
        and run.key(MEASURELY, s) in run.live_after["phase1"][MEASURELY]
    )
    decoder = WireDecoder(SchemaRegistryClient(run.conn.registry_config()))
    compared = 0
    reports = {}
    for student in (t.all_opt_out, t.directory, t.revoke, district_out):
        result = hallpass(
            run.conn, run.topics, run.data_dir, "disclosures", "--student", student, "--json"
        )
        rows = reports[student] = json.loads(result.stdout)
        assert {r["student_id"] for r in rows} == {student}
        for partner in PARTNERS:
            key = run.key(partner, student)
            allowed = set(run.allowances(partner)) | set(ENVELOPE_FIELDS)
            history = run.history(partner, key)
            compared += len(history)
            sent = sorted(
                tuple(
                    sorted(non_null_leaves(decoder.decode(r.value), allowed) - set(ENVELOPE_FIELDS))
                )
                for r in history
                if r.value is not None
            )
            reported = sorted(
                tuple(sorted(r["fields"]))
                for r in rows
                if r["partner"] == partner and r["decision"] == "DISCLOSED"
            )
            assert reported == sent, f"{student} / {partner}"
            retracted = [
                r
                for r in rows
                if r["partner"] == partner and r["decision"] == "RETRACTED" and not r["fields"]
            ]
            assert len(retracted) == sum(1 for r in history if r.value is None)
            assert {r["partner_student_key"] for r in rows if r["partner"] == partner} <= {
                key.decode()
            }
            assert all(
                r["contract_version"] == run.contracts[partner].version
                for r in rows
                if r["partner"] == partner
            )
    assert compared >= 12, "the students chosen received records and retractions"
    assert {
        r["partner"]
        for r in reports[t.all_opt_out]
        if r["decision"] == "RETRACTED" and r["reason"] == "ALL_OPT_OUT"
    } == {LEARNWELL, MEASURELY, CAREWELL}


# --- 5. SIGKILL ----------------------------------------------------------------------------------


def test_sigkills_change_nothing_partners_or_the_ledger_see(run: BusRun, tmp_path: Path) -> None:
    """``hallpass process`` SIGKILLed again and again on the same input as the fixture's run:
    at random moments (start-up, restore, joining the group, processing), and while a
    transaction is open with records already on the broker. Each restart continues from
    what was committed; in the end partners and ledger hold what the run without kills
    produced, nothing twice, nothing missing."""
    topics = Topics(f"t.kill.{uuid.uuid4().hex[:10]}.")
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    inputs = [topics.changes, topics.consent]
    args = [
        "--contracts",
        str(run.contracts_dir),
        "--partner-secrets",
        str(run.secrets_file),
        "--batch-size",
        "200",
        "--frozen-clock",
        str(run.final_clock),
    ]
    try:
        apply_contracts(run.conn, run.contracts_dir, topics, secrets_file=run.secrets_file)
        publish(
            run.conn,
            topics,
            [
                *((e.topic, e.key, e.value) for e in run.events),
                *((CONSENT_TOPIC, v["student_id"], v) for v in run.cli_events),
            ],
        )
        total = len(run.events) + len(run.cli_events)
        open_txn = OpenTransactions(run.conn, [topics.audit, *map(topics.partner, PARTNERS)])
        kills, hits, done = 0, 0, 0
        log: list[str] = []
        while (kills < 6 or hits < 2) and kills < 14:
            proc = ProcessorProcess(run.conn, topics, tmp_path, args, tmp_path / f"{kills}.log")
            targeted = kills % 2 == 0
            if targeted:
                # once this run committed (and so aborted its predecessor's transaction), the
                # moment a transaction of its own is open with records on the broker
                proc.wait_for("processed ", 120)

                def opened(p: ProcessorProcess = proc) -> bool:
                    return open_txn.records() > 0 or p.proc.poll() is not None

                eventually(opened, 20, "no transaction seen open", interval_s=0)
            else:
                time.sleep(rng.uniform(0.2, 3.0))
            if not proc.kill():
                break
            kills += 1
            hit = open_txn.records() > 0
            hits += hit
            now_done = sum(committed_offsets(run.conn, topics.processor_group, inputs).values())
            log.append(f"{'targeted' if targeted else 'random'}:{now_done}{'*' if hit else ''}")
            assert now_done >= done, f"committed offsets went back: {log} (seed {seed})"
            if targeted:
                assert now_done > done, f"a restart did not continue: {log} (seed {seed})"
            done = now_done
        assert kills >= 5, f"the processor finished after {kills} kills: {log} (seed {seed})"
        assert hits >= 1, f"no kill caught a transaction open: {log} (seed {seed})"
        assert done < total, f"nothing was left for the last run: {log} (seed {seed})"

        last = ProcessorProcess(run.conn, topics, tmp_path, args, tmp_path / "last.log")
        assert last.finish(180) == 0, last.output()
        assert sum(committed_offsets(run.conn, topics.processor_group, inputs).values()) == total
        assert open_txn.records() == 0

        # what the killed transactions wrote is there, and hidden from read_committed
        aborted = sum(
            count_records(run.conn, t, "read_uncommitted")
            - count_records(run.conn, t, "read_committed")
            for t in (topics.audit, topics.state, *map(topics.partner, PARTNERS))
        )
        assert aborted > 0, f"kills (* = open transaction): {log} (seed {seed})"
        print(
            f"{kills} kills (* = open transaction): {log}; {aborted} aborted records on the "
            f"audit and state topics (seed {seed})"
        )

        for partner in PARTNERS:
            reads = read_topic(run.conn, topics.partner(partner))
            assert live_records(run.conn, reads) == run.live(partner), (
                f"{partner}: what the partner holds differs from the run without kills "
                f"(kills {log}, seed {seed})"
            )
            assert not _resent(run.conn, reads), f"{partner} received a record twice (seed {seed})"
        ledger = list(read_ledger(run.conn, topics.audit))
        problems = _ledger_problems(ledger, topics.changes, run.change_event_ids)
        problems += _ledger_matches_topics(
            ledger, {p: read_topic(run.conn, topics.partner(p)) for p in PARTNERS}
        )
        assert not problems, f"kills {log}, seed {seed}: {problems}"
    finally:
        drop_prefix(run.conn, topics.prefix)


# --- the district opt-out across input partitions -------------------------------------------------


def test_a_district_opt_out_binds_the_students_of_every_partition(run: BusRun) -> None:
    """A district event lives on one input partition, the district's students on all of
    them: the opt-out withholds and retracts the district's students everywhere, for that
    partner only (consented records of another partner stay), and a snapshot of a student
    arriving after it does not reach the partner."""
    topics = Topics(f"t.dist.{uuid.uuid4().hex[:10]}.")
    district_event = next(e for e in run.events if e.value.get("kind") == "DISTRICT_OPT_OUT")
    district, partner = district_event.value["district_id"], district_event.value["partner"]
    opt_out_at = district_event.value["effective_at"]
    x = partition_for(district.encode(), 3)
    snapshots: dict[str, SimEvent] = {}
    for event in run.events:
        if (
            event.topic == CHANGES_TOPIC
            and event.value["district_id"] == district
            and event.value["operation"] == "UPSERT"
            and event.key not in snapshots
            and event_time(event.value) < opt_out_at
        ):
            snapshots[event.key] = event
    others = sorted(s for s in snapshots if partition_for(s.encode(), 3) != x)
    a, b = others[:4], others[4:8]
    assert len(b) == 4
    before, after = opt_out_at - 60_000, opt_out_at + 60_000
    grants = [
        ConsentEvent(
            event_id=f"t-grant-{student}",
            kind=ConsentKind.GRANT,
            district_id=district,
            effective_at=opt_out_at - 3_600_000,
            student_id=student,
            partner=CAREWELL,
            categories=frozenset({"student_name"}),
            recorded_by="t",
            source_system="t",
            # signed by whoever holds the right then (34 CFR 99.5: the student at 18)
            **(
                STUDENT_SIGNED
                if (record_majority_at(snapshots[student].value, MajorityAges()) or before + 1)
                <= before
                else GUARDIAN_SIGNED
            ),
        ).to_avro()
        for student in a
    ]
    try:
        apply_contracts(run.conn, run.contracts_dir, topics, secrets_file=run.secrets_file)
        publish(
            run.conn,
            topics,
            [
                *((CHANGES_TOPIC, s, snapshots[s].value) for s in a),
                *((CONSENT_TOPIC, g["student_id"], g) for g in grants),
            ],
        )
        process(run.conn, topics, run.contracts_dir, run.secrets_file, before)
        publish(run.conn, topics, [district_event])
        process(run.conn, topics, run.contracts_dir, run.secrets_file, after)
        publish(run.conn, topics, [(CHANGES_TOPIC, s, snapshots[s].value) for s in b])
        process(run.conn, topics, run.contracts_dir, run.secrets_file, after)

        placed = {
            (r.key or b"").decode(): r.partition
            for t in (topics.changes, topics.consent)
            for r in read_topic(run.conn, t)
        }
        assert placed[district] == x
        assert {placed[s] for s in (*a, *b)} - {x}, "the students are on other partitions"

        def held(p: str) -> set[str]:
            keys = live_records(run.conn, read_topic(run.conn, topics.partner(p))).keys()
            return {s for s in (*a, *b) if run.key(p, s) in keys}

        assert held(partner) == set(), f"{partner} holds students of a district opted out"
        assert held(CAREWELL) == set(a), "the district opt-out retracted consented records"
        assert held(LEARNWELL) == {*a, *b}
        decisions = Counter(
            (r["student_id"] in a, r["decision"], r["reason"])
            for _, r in read_ledger(run.conn, topics.audit)
            if r["partner"] == partner
        )
        assert decisions == {
            (True, "DISCLOSED", None): 4,
            (True, "RETRACTED", "DISTRICT_OPT_OUT"): 4,
            (False, "WITHHELD", "DISTRICT_OPT_OUT"): 4,
        }
    finally:
        drop_prefix(run.conn, topics.prefix)
