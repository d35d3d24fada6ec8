"""Creating topics and reading and changing their settings (the admin API)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.names import TopicSpec


class TopicCreationRefused(HallpassError, PermissionError):
    """The cluster refused to create a topic this principal may not create."""


def ensure_topics(
    conn: Connection, specs: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AdminClient(conn.kafka_config())
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication_factor,
            config=dict(s.config),
        )
        for s in specs
        if s.name not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0].name()
            if error == "TOPIC_AUTHORIZATION_FAILED":
                raise TopicCreationRefused(
                    f"not allowed to create topic {name}: create it as the admin "
                    "(`hallpass contracts apply` or `hallpass topics check --fix`), or grant "
                    "this principal CREATE on it (`hallpass acl plan`)"
                ) from exc
            if error != "TOPIC_ALREADY_EXISTS":
                raise
    _await_metadata(admin, [t.topic for t in wanted], timeout_s)
    return created


def _await_metadata(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Wait (bounded) until the broker's metadata has a leader for every partition of the
    topics just created: the controller acknowledges a creation before the brokers know it,
    and a describe or produce in between finds no such topic."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = admin.list_topics(timeout=timeout_s).topics
        if all(
            n in found
            and found[n].error is None
            and found[n].partitions
            and all(p.leader >= 0 for p in found[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.1)


def describe_topics(
    conn: Connection,
    names: Iterable[str],
    timeout_s: float = 30.0,
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """The effective configuration and the replication factor of each existing topic among
    ``names`` (topics that do not exist are left out)."""
    admin = AdminClient(conn.kafka_config())
    wanted = list(names)
    configs: dict[str, dict[str, str]] = {}
    if wanted:
        futures = admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, n) for n in wanted], request_timeout=timeout_s
        )
        for resource, future in futures.items():
            try:
                entries = future.result()
            except KafkaException as exc:
                if exc.args[0].name() == "UNKNOWN_TOPIC_OR_PART":
                    continue
                raise
            configs[resource.name] = {k: e.value for k, e in entries.items() if e.value is not None}
    found = admin.list_topics(timeout=timeout_s).topics
    replicas = {
        n: min((len(p.replicas) for p in found[n].partitions.values()), default=0)
        for n in configs
        if n in found
    }
    return configs, replicas


def alter_topic_configs(
    conn: Connection, changes: Mapping[str, Mapping[str, str]], timeout_s: float = 30.0
) -> None:
    """Set the given topic-level settings (topic -> {key: value}) on existing topics,
    leaving their other settings as they are."""
    if not changes:
        return
    admin = AdminClient(conn.kafka_config())
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in sorted(settings.items())
            ],
        )
        for topic, settings in changes.items()
    ]
    for future in admin.incremental_alter_configs(resources, request_timeout=timeout_s).values():
        future.result()


def partition_counts(
    conn: Connection, names: Iterable[str], timeout_s: float = 30.0
) -> dict[str, int]:
    """The number of partitions of each existing topic among ``names``."""
    admin = AdminClient(conn.kafka_config())
    found = admin.list_topics(timeout=timeout_s).topics
    return {name: len(found[name].partitions) for name in names if name in found}
