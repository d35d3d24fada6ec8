"""Assembling the processor: contracts, registered partner views, codecs, secrets, the loop."""

from __future__ import annotations

import dataclasses
import functools
import json
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from prometheus_client import CollectorRegistry

from streams.catalog import FieldInfo, field_catalog, load_schema, never_share_paths
from streams.config import Connection
from streams.contracts import Contract, load_contracts
from streams.metrics import ProcessorCollector, ProcessorSources, ProcessorTimings
from streams.policy import partner_key
from streams.processor.handlers import BusHandler, PartnerRoute
from streams.processor.loop import LoopSettings, LoopStats, ProcessorLoop
from streams.topics import (
    COMPACTED,
    DEFAULT_TOPICS,
    Topics,
    TopicSpec,
    ensure_topics,
    partition_counts,
)
from streams.views import compile_view, derive_view_schema
from streams.wire import WireDecoder, WireEncoder

ENV_SECRETS_FILE = "HALLPASS_PARTNER_SECRETS_FILE"


class ProcessorSetupError(RuntimeError):
    """The processor cannot start; the message says what to do."""


def view_subject(contract: Contract) -> str:
    return f"{contract.topic}-value"


def prefixed(contracts: list[Contract], topics: Topics) -> list[Contract]:
    """The contracts with their partner topics under ``topics.prefix``."""
    if not topics.prefix:
        return contracts
    return [dataclasses.replace(c, topic=topics.name(c.topic)) for c in contracts]


def contract_topics(contracts: list[Contract], partitions: int = 3,
                    topics: Topics = DEFAULT_TOPICS) -> list[TopicSpec]:
    specs = []
    for contract in contracts:
        specs.append(TopicSpec(contract.topic, partitions, COMPACTED))
        specs.append(TopicSpec(topics.notices(contract.partner), partitions))
    return specs


def bus_topics(partitions: int = 3, topics: Topics = DEFAULT_TOPICS) -> list[TopicSpec]:
    return [
        TopicSpec(topics.changes, partitions),
        TopicSpec(topics.consent, partitions, COMPACTED),
        TopicSpec(topics.audit, partitions),
        TopicSpec(topics.changes_dlq, 1),
        TopicSpec(topics.state, partitions, COMPACTED),
        TopicSpec(topics.districts, 1, COMPACTED),
    ]


@dataclass(frozen=True)
class AppliedContract:
    partner: str
    topic: str
    subject: str
    schema_id: int
    fields: int


def apply_contracts(conn: Connection, contracts_dir: Path,
                    topics: Topics = DEFAULT_TOPICS) -> list[AppliedContract]:
    """Create each partner topic (compacted) and register its view schema."""
    source = load_schema("student_record_changed")
    catalog = field_catalog(source)
    contracts = prefixed(load_contracts(contracts_dir, catalog), topics)
    ensure_topics(conn, bus_topics(input_partitions(conn, topics), topics)
                  + contract_topics(contracts, topics=topics))
    registry = SchemaRegistryClient(conn.registry_config())
    applied = []
    for contract in contracts:
        view_schema = derive_view_schema(source, contract)
        encoder = WireEncoder(registry, view_subject(contract), view_schema)
        applied.append(AppliedContract(contract.partner, contract.topic, view_subject(contract),
                                       encoder.schema_id, len(compile_view(
                                           view_schema, contract, catalog).leaves)))
    return applied


def load_partner_secrets(path: Path, partners: list[str],
                         note: Callable[[str], None]) -> dict[str, bytes]:
    """Per-partner HMAC secrets from a JSON file ({partner: hex secret}); partners without
    one get a new random secret, saved with mode 600."""
    found: dict[str, str] = {}
    if path.exists():
        try:
            found = dict(json.loads(path.read_text()))
        except ValueError as exc:
            raise ProcessorSetupError(f"{path}: not a JSON object of partner secrets: {exc}") \
                from exc
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


def _pseudonym(secret: bytes, student: str) -> str:
    return partner_key(student, secret)


def build_handler(conn: Connection, contracts_dir: Path, secrets_file: Path,
                  note: Callable[[str], None], topics: Topics = DEFAULT_TOPICS) -> BusHandler:
    source = load_schema("student_record_changed")
    catalog = field_catalog(source)
    contracts = prefixed(load_contracts(contracts_dir, catalog), topics)  # refuses invalid
    registry = SchemaRegistryClient(conn.registry_config())
    keys = load_partner_secrets(secrets_file, [c.partner for c in contracts], note)
    routes = []
    for contract in contracts:
        try:
            registered = registry.get_latest_version(view_subject(contract))
        except SchemaRegistryError as exc:
            raise ProcessorSetupError(
                f"no view schema is registered for partner {contract.partner} "
                f"({view_subject(contract)}): run `hallpass contracts apply` first"
            ) from exc
        view_schema: dict[str, Any] = json.loads(registered.schema.schema_str or "{}")
        view = compile_view(view_schema, contract, catalog)
        encoder = WireEncoder(registry, view_subject(contract), view_schema,
                              logical_types=False)
        secret = keys[contract.partner]
        routes.append(PartnerRoute(
            contract=contract, view=view, encode_view=encoder.encode,
            pseudonym=functools.partial(_pseudonym, secret),
        ))
    change_decoder = WireDecoder(registry)
    consent_decoder = WireDecoder(registry, reader_schema=load_schema("consent_changed"))
    audit = WireEncoder(registry, f"{topics.audit}-value", load_schema("disclosure_record"),
                        logical_types=False)
    notice_schema = load_schema("deletion_notice")
    notice_encoders = {
        c.partner: WireEncoder(registry, f"{topics.notices(c.partner)}-value", notice_schema,
                               logical_types=False)
        for c in contracts
    }

    def encode_notice(value: Any) -> bytes:
        return notice_encoders[value["partner"]].encode(value)

    return BusHandler(
        routes=routes,
        decode_change=change_decoder.decode,
        decode_consent=consent_decoder.decode,
        encode_audit=audit.encode,
        encode_notice=encode_notice,
        never_share=sorted(never_share_paths(catalog)),
        topics=topics,
    )


def input_partitions(conn: Connection, topics: Topics, default: int = 3) -> int:
    """Partitions for new bus topics: as many as the change topic has, if it exists."""
    return partition_counts(conn, [topics.changes]).get(topics.changes, default)


def check_copartitioned(conn: Connection, topics: Topics) -> None:
    """Create missing bus topics with as many partitions as the change topic, and refuse to
    start if the inputs and the state changelog are not co-partitioned: the state of input
    partition p lives in changelog partition p, and a student's changes and consent events
    must meet on the same partition number."""
    ensure_topics(conn, bus_topics(input_partitions(conn, topics), topics))
    counts = partition_counts(conn, [topics.changes, topics.consent, topics.state])
    changes = counts[topics.changes]
    if counts[topics.consent] != changes or counts[topics.state] < changes:
        raise ProcessorSetupError(
            f"{topics.changes} has {changes} partitions, {topics.consent} "
            f"{counts[topics.consent]} and {topics.state} {counts[topics.state]}: the consent "
            "topic needs as many partitions as the change topic (a student's events must meet "
            "on one partition) and the state changelog at least as many. Recreate or extend "
            "them (kafka-topics --alter --partitions N) before starting the processor.")


def stripped_by_category(catalog: Mapping[str, FieldInfo],
                         kept: Iterable[str]) -> dict[str, int]:
    """Per data category, the leaves of the student record a view leaves out."""
    keep = set(kept)
    counts: dict[str, int] = {}
    for path, info in catalog.items():
        if path not in keep:
            counts[info.category] = counts.get(info.category, 0) + 1
    return counts


def register_metrics(registry: CollectorRegistry, loop: ProcessorLoop,
                     handler: BusHandler) -> ProcessorTimings:
    """Expose the loop's and handler's counters in ``registry``; returns the timings the
    loop must observe."""
    catalog = field_catalog(load_schema("student_record_changed"))

    def consent_students() -> int:
        return sum(len(state.consent) for state in list(loop.tables.partitions.values()))

    registry.register(ProcessorCollector(ProcessorSources(
        counts=lambda: handler.counters,
        consumed_by_topic=lambda: loop.stats.by_topic,
        transactions=lambda: loop.stats.transactions,
        last_commit_unix=lambda: loop.stats.last_commit_unix,
        consent_students=consent_students,
        stripped_per_disclosure={
            route.partner: stripped_by_category(catalog, (leaf.path for leaf in route.view.leaves))
            for route in handler.routes
        },
    )))
    return ProcessorTimings(registry)


def run_processor(conn: Connection, contracts_dir: Path, secrets_file: Path,
                  until_idle: bool, worker: int, note: Callable[[str], None],
                  on_progress: Callable[[LoopStats], None] | None = None,
                  batch_size: int = 5000,
                  topics: Topics = DEFAULT_TOPICS,
                  metrics: CollectorRegistry | None = None) -> tuple[LoopStats, BusHandler]:
    """Run the processor until stopped (SIGTERM) or, with ``until_idle``, caught up. With a
    ``metrics`` registry, its counters and timings are exposed there."""
    check_copartitioned(conn, topics)
    handler = build_handler(conn, contracts_dir, secrets_file, note, topics)
    member = f"{topics.processor_group}-{socket.gethostname()}-{worker}"
    settings = LoopSettings(
        group_id=topics.processor_group, transactional_id=member, group_instance_id=member,
        until_idle=until_idle, batch_size=batch_size,
        state_topic=topics.state, district_topic=topics.districts,
    )
    loop = ProcessorLoop(conn, [topics.changes, topics.consent], handler, settings,
                         on_progress)
    if metrics is not None:
        loop.observer = register_metrics(metrics, loop, handler)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    stats = loop.run()
    return stats, handler
