"""The broker's configuration: one combined KRaft node, plaintext or secure listeners."""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------
# The stack


_BROKER_NODE = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
"""

_PLAINTEXT_LISTENERS = """\
listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{kafka}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
"""

#: Listeners of the secure broker (``up --secure``), and why:
#:
#: - CLIENT (SASL_PLAINTEXT, or SASL_SSL with ``--tls``), SCRAM-SHA-512: every client, and the
#:   broker itself as inter-broker listener (in KRaft a single node still sends itself
#:   transaction markers), authenticated as the super user ``User:hallpass-broker``.
#: - CONTROLLER (SASL_PLAINTEXT on 127.0.0.1), PLAIN: the broker talking to its own
#:   controller, as ``User:hallpass-broker`` with the password only server.properties holds.
#:   SCRAM cannot serve the controller listener (SCRAM credentials live in the metadata log
#:   the controller itself serves); a PLAINTEXT controller listener would need ANONYMOUS in
#:   super.users, making any local process that connects to the controller port a super user
#:   (the controller accepts admin requests, e.g. to create ACLs). Loopback-only, so no TLS.
SECURE_LISTENERS = """\
listeners=CLIENT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=CLIENT://127.0.0.1:{kafka}
listener.security.protocol.map=CLIENT:{client_protocol},CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required \
username="{broker_user}" password="{broker_password}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required \
username="{broker_user}" password="{broker_password}" user_{broker_user}="{broker_password}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{admin_user};User:{broker_user}
"""

#: TLS on the client listener (``up --secure --tls``): PEM files of the local CA.
SECURE_TLS = """\
ssl.keystore.type=PEM
ssl.keystore.location={tls_dir}/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location={tls_dir}/ca.pem
ssl.client.auth=none
"""

_BROKER_COMMON = """\
log.dirs={log_dir}
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=-1
log.cleaner.enable=true
"""

BROKER_PROPERTIES = (
    "# written by `hallpass up`; one combined broker+controller node in KRaft mode\n"
    + _BROKER_NODE
    + _PLAINTEXT_LISTENERS
    + _BROKER_COMMON
)
SECURE_BROKER_PROPERTIES = (
    "# written by `hallpass up --secure`: one combined broker+controller node in KRaft mode.\n"
    "# It holds the broker's own password: keep it mode 600.\n"
    + _BROKER_NODE
    + SECURE_LISTENERS
    + "{tls}"
    + _BROKER_COMMON
)

LOG4J2_PROPERTIES = """\
# written by `hallpass up`: broker logs to {log}
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %-5p [%c{{1}}] %m%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


# ---------------------------------------------------------------------------------------------
# A cluster of nodes (``hallpass up --brokers 3``)

#: A cluster of three or more nodes survives the loss of one: every topic (the bus's topics
#: take the cluster's defaults, so do the offsets and transaction state logs) has three
#: replicas and needs two in sync to accept a write with acks=all, and the controller
#: quorum has three voters.
CLUSTER_REPLICATION = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}


def node_ports(kafka: int, controller: int, node: int) -> tuple[int, int]:
    """The client and controller ports of node ``node`` (1-based): node 1 has the given
    ports, each further node the ones two above the previous node's (with the defaults
    9092/9093, 9094/9095 and 9096/9097), so that adjacent given ports never collide."""
    return kafka + 2 * (node - 1), controller + 2 * (node - 1)


def cluster_properties(single_node: str, node: int, nodes: int, kafka: int, controller: int) -> str:
    """A node's server.properties in a cluster of ``nodes`` combined broker+controller
    nodes, made from the single node's (its listeners on the node's own ports)."""
    if nodes == 1:
        return single_node
    voters = ",".join(
        f"{n}@127.0.0.1:{node_ports(kafka, controller, n)[1]}" for n in range(1, nodes + 1)
    )
    own_kafka, own_controller = node_ports(kafka, controller, node)
    moved = {str(kafka): str(own_kafka), str(controller): str(own_controller)}
    text = re.sub(
        r"127\.0\.0\.1:(\d+)\b",
        lambda m: f"127.0.0.1:{moved.get(m.group(1), m.group(1))}",
        single_node,
    )
    return with_overrides(
        text, {"node.id": str(node), "controller.quorum.voters": voters, **CLUSTER_REPLICATION}
    )


def with_overrides(text: str, overrides: dict[str, str]) -> str:
    """``text`` (a properties file) with each key of ``overrides`` set: its line replaced
    where it has one, else appended."""
    lines: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and key in overrides:
            seen.add(key)
            line = f"{key}={overrides[key]}"
        lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
    return "\n".join(lines) + "\n"
