"""Assembling the processor: contracts, registered partner views, codecs, secrets, the loop."""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from prometheus_client import CollectorRegistry

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.admin import describe_topics, ensure_topics, partition_counts
from streams.kafka.names import DEFAULT_TOPICS, Topics, TopicSpec
from streams.kafka.read_to_end import nonempty_from_start, read_to_end
from streams.kafka.wire import WireDecoder, WireEncoder, WireFormatError
from streams.metrics import ProcessorCollector, ProcessorSources, ProcessorTimings
from streams.policy.catalog import FieldInfo, field_catalog, load_schema, never_share_paths
from streams.policy.contracts import Contract, load_contracts
from streams.policy.decision import partner_key, partner_reference
from streams.policy.majority import DEFAULT_MAJORITY_AGES, MajorityAges
from streams.policy.retention import (
    DEFAULT_TOPIC_SETTINGS,
    TopicDrift,
    TopicSettings,
    bus_topic_specs,
    drift,
    partner_topic_specs,
)
from streams.policy.views import compile_view, derive_view_schema
from streams.processor.clock import Clock
from streams.processor.handlers import BusHandler, Codecs, HandlerSettings, PartnerRoute
from streams.processor.loop import LoopSettings, LoopStats, ProcessorLoop
from streams.processor.state import Tables, fingerprint_key, fingerprint_value
from streams.security.client_settings import check_private


class ProcessorSetupError(HallpassError, RuntimeError):
    """The processor cannot start; the message says what to do."""


def view_subject(contract: Contract) -> str:
    return f"{contract.topic}-value"


def prefixed(contracts: list[Contract], topics: Topics) -> list[Contract]:
    """The contracts with their partner topics under ``topics.prefix``."""
    if not topics.prefix:
        return contracts
    return [dataclasses.replace(c, topic=topics.name(c.topic)) for c in contracts]


def contract_topics(
    contracts: list[Contract],
    partitions: int = 3,
    topics: Topics = DEFAULT_TOPICS,
    settings: TopicSettings = DEFAULT_TOPIC_SETTINGS,
) -> list[TopicSpec]:
    """Each contract's partner topic and notices topic (``contracts`` already prefixed),
    configured by :mod:`streams.policy.retention`."""
    return partner_topic_specs(
        [(c.partner, c.topic) for c in contracts], partitions, topics, settings
    )


def bus_topics(
    partitions: int = 3,
    topics: Topics = DEFAULT_TOPICS,
    settings: TopicSettings = DEFAULT_TOPIC_SETTINGS,
) -> list[TopicSpec]:
    """The bus's own topics, configured by :mod:`streams.policy.retention`."""
    return bus_topic_specs(partitions, topics, settings)


def topics_drift(conn: Connection, specs: list[TopicSpec]) -> list[TopicDrift]:
    """Which settings of the existing topics among ``specs`` differ from them."""
    configs, replicas = describe_topics(conn, [s.name for s in specs])
    return drift(specs, configs, replicas)


@dataclass(frozen=True)
class AppliedContract:
    partner: str
    topic: str
    subject: str
    schema_id: int
    fields: int


def apply_contracts(
    conn: Connection,
    contracts_dir: Path,
    topics: Topics = DEFAULT_TOPICS,
    secrets_file: Path | None = None,
    note: Callable[[str], None] = lambda _m: None,
    settings: TopicSettings = DEFAULT_TOPIC_SETTINGS,
) -> list[AppliedContract]:
    """Create the bus's and each partner's topics (as :mod:`streams.policy.retention` says) and
    register each view schema; report (through ``note``) existing topics whose settings
    differ. With ``secrets_file``: make the pseudonym secrets of partners that have none (the
    one place they are made) and record every partner's secret fingerprint on the bus."""
    source = load_schema("student_record_changed")
    catalog = field_catalog(source)
    contracts = prefixed(load_contracts(contracts_dir, catalog), topics)
    specs = bus_topics(input_partitions(conn, topics), topics, settings) + contract_topics(
        contracts, topics=topics, settings=settings
    )
    ensure_topics(conn, specs)
    for found in topics_drift(conn, specs):
        note(f"warning: {found}; fix: {found.fix(conn.bootstrap_servers)}")
    if secrets_file is not None:
        keys = load_partner_secrets(secrets_file, [c.partner for c in contracts], note)
        recorded = record_fingerprints(conn, keys, topics)
        if recorded:
            note(f"recorded the pseudonym secret fingerprints of {', '.join(recorded)}")
    registry = SchemaRegistryClient(conn.registry_config())
    WireEncoder(registry, f"{topics.audit}-value", load_schema("disclosure_record"))
    for contract in contracts:
        WireEncoder(
            registry, f"{topics.notices(contract.partner)}-value", load_schema("deletion_notice")
        )
        # the vendor writes its acknowledgements with this schema; its registry credentials
        # are read-only, so it is registered here (issue 19)
        WireEncoder(registry, f"{topics.acks(contract.partner)}-value", load_schema("deletion_ack"))
    applied = []
    for contract in contracts:
        view_schema = derive_view_schema(source, contract)
        encoder = WireEncoder(registry, view_subject(contract), view_schema)
        applied.append(
            AppliedContract(
                contract.partner,
                contract.topic,
                view_subject(contract),
                encoder.schema_id,
                len(compile_view(view_schema, contract, catalog).leaves),
            )
        )
    return applied


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    check_private(path, "pseudonym secrets file")
    try:
        found = json.loads(path.read_text())
        if not isinstance(found, dict):
            raise ValueError("not an object")
        return {str(k): str(v) for k, v in found.items()}
    except ValueError as exc:
        raise ProcessorSetupError(f"{path}: not a JSON object of partner secrets ({exc})") from exc


def read_partner_secrets(path: Path, partners: list[str]) -> dict[str, bytes]:
    """The bus's per-partner HMAC secrets ({partner: hex secret}); a worker never makes them
    (two workers with secrets of their own would give one student two keys)."""
    found = _read_secrets(path)
    missing = [p for p in partners if p not in found]
    if missing:
        where = "does not exist" if not path.exists() else f"has none for {', '.join(missing)}"
        raise ProcessorSetupError(
            f"the pseudonym secrets file {path} {where}: secrets are made once, by "
            "`hallpass contracts apply --partner-secrets FILE`, and every worker is given "
            "the same file"
        )
    try:
        return {partner: bytes.fromhex(found[partner]) for partner in partners}
    except ValueError as exc:
        raise ProcessorSetupError(f"{path}: a secret is not hex ({exc})") from exc


def load_partner_secrets(
    path: Path, partners: list[str], note: Callable[[str], None]
) -> dict[str, bytes]:
    """The administrative step: per-partner HMAC secrets from a JSON file ({partner: hex
    secret}); partners without one get a new random secret, saved with mode 600."""
    found = _read_secrets(path)
    missing = [p for p in partners if p not in found]
    if missing:
        for partner in missing:
            found[partner] = secrets.token_hex(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(found, indent=2, sort_keys=True))
        tmp.chmod(0o600)
        tmp.replace(path)
        note(f"created pseudonym secrets for {', '.join(missing)} in {path} (keep it safe)")
    return {partner: bytes.fromhex(found[partner]) for partner in partners}


def secret_fingerprint(secret: bytes) -> str:
    """What the bus records of a pseudonym secret: an HMAC of a fixed label (it reveals
    nothing of the secret, and equal fingerprints mean equal secrets)."""
    return hmac.digest(secret, b"hallpass pseudonym secret fingerprint v1", "sha256").hex()[:32]


def record_fingerprints(
    conn: Connection, secrets_by_partner: Mapping[str, bytes], topics: Topics = DEFAULT_TOPICS
) -> list[str]:
    """Record each partner's secret fingerprint in the global table, once; refuse secrets
    that differ from the recorded ones. Returns the partners recorded now."""
    tables = Tables(topics.state, topics.districts)
    reader = Consumer(
        conn.kafka_config(
            {
                "group.id": f"{topics.processor_group}-admin",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:  # a topic created a moment ago may have no leader yet
                start = nonempty_from_start(reader, topics.districts, [0])
                break
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise ProcessorSetupError(
                        f"cannot read {topics.districts}: {exc.args[0].str()}"
                    ) from exc
                time.sleep(0.5)
        for msg in read_to_end(reader, start):
            tables.load_global(msg.key() or b"", msg.value())
    finally:
        reader.close()
    fresh = {p: secret_fingerprint(s) for p, s in secrets_by_partner.items()}
    differ = sorted(p for p, f in fresh.items() if tables.fingerprints.get(p, f) != f)
    if differ:
        raise ProcessorSetupError(
            f"the pseudonym secrets for {', '.join(differ)} are not the ones this bus uses "
            "(their fingerprints differ from those recorded in "
            f"{topics.districts}): use the bus's secrets file; new secrets would give every "
            "student a new key and leave the partner's copies under the old keys undeleted"
        )
    new = sorted(p for p in fresh if p not in tables.fingerprints)
    if new:
        producer = Producer(conn.kafka_config({"enable.idempotence": True, "acks": "all"}))
        for partner in new:
            producer.produce(
                topics.districts,
                key=fingerprint_key(partner),
                value=fingerprint_value(fresh[partner]),
                partition=0,
            )
        if producer.flush(30):
            raise ProcessorSetupError(
                f"could not record the secret fingerprints in {topics.districts}"
            )
    return new


def check_fingerprints(secrets_by_partner: Mapping[str, bytes]) -> Callable[[Tables], None]:
    """The worker's start-up check: its secrets are the bus's."""

    def check(tables: Tables) -> None:
        missing = sorted(p for p in secrets_by_partner if p not in tables.fingerprints)
        differ = sorted(
            p
            for p, s in secrets_by_partner.items()
            if p in tables.fingerprints and tables.fingerprints[p] != secret_fingerprint(s)
        )
        if differ:
            raise ProcessorSetupError(
                f"this worker's pseudonym secrets for {', '.join(differ)} are not the bus's "
                "(fingerprints differ): start every worker with the same secrets file"
            )
        if missing:
            raise ProcessorSetupError(
                f"no pseudonym secret is recorded for {', '.join(missing)}: run `hallpass "
                "contracts apply --partner-secrets FILE` with the bus's secrets file first"
            )

    return check


def _pseudonym(secret: bytes, student: str) -> str:
    return partner_key(student, secret)


def _reference(secret: bytes, value: str) -> str:
    return partner_reference(value, secret)


def _registered(
    registry: SchemaRegistryClient, subject: str, schema: Mapping[str, Any], what: str
) -> WireEncoder:
    """An encoder for ``schema`` as registered under ``subject`` by ``contracts apply`` (looked
    up by the exact schema: a version someone else registered since is never used)."""
    try:
        return WireEncoder(registry, subject, schema, logical_types=False, register=False)
    except (SchemaRegistryError, WireFormatError) as exc:
        raise ProcessorSetupError(
            f"{what} is not registered under {subject}: run `hallpass contracts apply` with "
            f"these contracts first ({exc})"
        ) from exc


def build_handler(
    conn: Connection,
    contracts_dir: Path,
    keys: Mapping[str, bytes],
    topics: Topics = DEFAULT_TOPICS,
    partitions: int = 3,
    clock: Clock | None = None,
    future_skew_ms: int = 86_400_000,
    known_districts: frozenset[str] = frozenset(),
    majority_ages: MajorityAges = DEFAULT_MAJORITY_AGES,
) -> BusHandler:
    source = load_schema("student_record_changed")
    catalog = field_catalog(source)
    contracts = prefixed(load_contracts(contracts_dir, catalog), topics)  # refuses invalid
    registry = SchemaRegistryClient(conn.registry_config())
    routes = []
    for contract in contracts:
        # the view comes from the contract, never from the registry: whatever else someone
        # registers under the subject changes nothing here
        view_schema = derive_view_schema(source, contract)
        encoder = _registered(
            registry,
            view_subject(contract),
            view_schema,
            f"the view of partner {contract.partner} (contract version {contract.version})",
        )
        view = compile_view(view_schema, contract, catalog)
        secret = keys[contract.partner]
        routes.append(
            PartnerRoute(
                contract=contract,
                view=view,
                encode_view=encoder.encode,
                pseudonym=functools.partial(_pseudonym, secret),
                reference=functools.partial(_reference, secret),
            )
        )
    change_decoder = WireDecoder(registry, record_name=_full_name(source), expected_schema=source)
    consent_schema = load_schema("consent_changed")
    consent_decoder = WireDecoder(
        registry, reader_schema=consent_schema, record_name=_full_name(consent_schema)
    )
    # the inputs' registered schemas, at start-up: an opt-out decodes while the registry is
    # down later (a schema id it has not seen is waited for, never dead-lettered)
    change_decoder.prime(f"{topics.changes}-value")
    consent_decoder.prime(f"{topics.consent}-value")
    audit = _registered(
        registry,
        f"{topics.audit}-value",
        load_schema("disclosure_record"),
        "the audit record schema",
    )
    notice_schema = load_schema("deletion_notice")
    notice_encoders = {
        c.partner: _registered(
            registry,
            f"{topics.notices(c.partner)}-value",
            notice_schema,
            f"the deletion notice schema of partner {c.partner}",
        )
        for c in contracts
    }

    def encode_notice(value: Any) -> bytes:
        return notice_encoders[value["partner"]].encode(value)

    return BusHandler(
        routes,
        Codecs(
            decode_change=change_decoder.decode,
            decode_consent=consent_decoder.decode,
            encode_audit=audit.encode,
            encode_notice=encode_notice,
            encode_dead_change=change_decoder.reencode,
            prefetch_change=change_decoder.prefetch,
            prefetch_consent=consent_decoder.prefetch,
            change_conforms=change_decoder.conforms,
        ),
        HandlerSettings(
            partitions=partitions,
            never_share=sorted(never_share_paths(catalog)),
            topics=topics,
            future_skew_ms=future_skew_ms,
            field_categories={p: info.category for p, info in catalog.items()},
            change_schema=source,
            known_districts=known_districts,
            majority_ages=majority_ages,
        ),
        clock=clock,
    )


def _full_name(schema: Mapping[str, Any]) -> str:
    namespace = schema.get("namespace")
    return f"{namespace}.{schema['name']}" if namespace else str(schema["name"])


def contract_partners(contracts_dir: Path) -> list[str]:
    return [
        c.partner
        for c in load_contracts(contracts_dir, field_catalog(load_schema("student_record_changed")))
    ]


def input_partitions(conn: Connection, topics: Topics, default: int = 3) -> int:
    """Partitions for new bus topics: as many as the change topic has, if it exists."""
    return partition_counts(conn, [topics.changes]).get(topics.changes, default)


def check_copartitioned(
    conn: Connection, topics: Topics, settings: TopicSettings = DEFAULT_TOPIC_SETTINGS
) -> int:
    """Create missing bus topics with as many partitions as the change topic, and refuse to
    start if the inputs, the repartition topic and the state changelog do not have the same
    number of partitions: the state of partition p lives in changelog partition p, and the
    worker that owns p reads partition p of every input. Returns that number."""
    # the processor's own topics: not the DLQ replay markers, which only the admin's `dlq
    # replay` writes (the processor has no right to create them on a secure cluster)
    ensure_topics(
        conn,
        [
            spec
            for spec in bus_topics(input_partitions(conn, topics), topics, settings)
            if spec.name != topics.changes_dlq_replayed
        ],
    )
    names = [topics.changes, topics.consent, topics.repartition, topics.state]
    counts = partition_counts(conn, names)
    changes = counts[topics.changes]
    if any(counts[n] != changes for n in names[1:3]) or counts[topics.state] < changes:
        found = ", ".join(f"{n} {counts[n]}" for n in names)
        raise ProcessorSetupError(
            f"partitions: {found}. The consent and repartition topics need as many "
            "partitions as the change topic, and the state changelog at least as many (each "
            "worker decides the students of the partition numbers it owns). Recreate or "
            "extend them (kafka-topics --alter --partitions N) before starting the processor."
        )
    return changes


def stripped_by_category(catalog: Mapping[str, FieldInfo], kept: Iterable[str]) -> dict[str, int]:
    """Per data category, the leaves of the student record a view leaves out."""
    keep = set(kept)
    counts: dict[str, int] = {}
    for path, info in catalog.items():
        if path not in keep:
            counts[info.category] = counts.get(info.category, 0) + 1
    return counts


def register_metrics(
    registry: CollectorRegistry, loop: ProcessorLoop, handler: BusHandler
) -> ProcessorTimings:
    """Expose the loop's and handler's counters in ``registry``; returns the timings the
    loop must observe."""
    catalog = field_catalog(load_schema("student_record_changed"))

    def consent_students() -> int:
        return sum(len(state.consent) for state in list(loop.tables.partitions.values()))

    registry.register(
        ProcessorCollector(
            ProcessorSources(
                counts=lambda: handler.counters,
                consumed_by_topic=lambda: loop.stats.by_topic,
                transactions=lambda: loop.stats.transactions,
                last_commit_unix=lambda: loop.stats.last_commit_unix,
                consent_students=consent_students,
                blocked_seconds=lambda: dict(loop.stats.blocked_s),
                stripped_per_disclosure={
                    route.partner: stripped_by_category(
                        catalog, (leaf.path for leaf in route.view.leaves)
                    )
                    for route in handler.routes
                },
            )
        )
    )
    return ProcessorTimings(registry)


def run_processor(
    conn: Connection,
    contracts_dir: Path,
    secrets_file: Path,
    until_idle: bool,
    worker: int,
    note: Callable[[str], None],
    on_progress: Callable[[LoopStats], None] | None = None,
    batch_size: int = 5000,
    topics: Topics = DEFAULT_TOPICS,
    metrics: CollectorRegistry | None = None,
    clock: Clock | None = None,
    tick_interval_s: float = 5.0,
    future_skew_ms: int = 86_400_000,
    topic_settings: TopicSettings = DEFAULT_TOPIC_SETTINGS,
    known_districts: frozenset[str] = frozenset(),
    majority_ages: MajorityAges = DEFAULT_MAJORITY_AGES,
) -> tuple[LoopStats, BusHandler]:
    """Run the processor until stopped (SIGTERM) or, with ``until_idle``, caught up. With a
    ``metrics`` registry, its counters and timings are exposed there."""
    partitions = check_copartitioned(conn, topics, topic_settings)
    keys = read_partner_secrets(secrets_file, contract_partners(contracts_dir))
    handler = build_handler(
        conn,
        contracts_dir,
        keys,
        topics,
        partitions,
        clock,
        future_skew_ms,
        known_districts,
        majority_ages,
    )
    member = f"{topics.processor_group}-{socket.gethostname()}-{worker}"
    settings = LoopSettings(
        group_id=topics.processor_group,
        transactional_id=member,
        group_instance_id=member,
        until_idle=until_idle,
        batch_size=batch_size,
        state_topic=topics.state,
        district_topic=topics.districts,
        tick_interval_s=tick_interval_s,
    )
    loop = ProcessorLoop(
        conn,
        [topics.changes, topics.consent, topics.repartition],
        handler,
        settings,
        on_progress,
        check_global=check_fingerprints(keys),
    )
    if metrics is not None:
        loop.observer = register_metrics(metrics, loop, handler)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    stats = loop.run()
    return stats, handler
