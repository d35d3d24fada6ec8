"""The broker's configuration: one combined KRaft node, plaintext or secure listeners."""

from __future__ import annotations

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
    + _BROKER_NODE + _PLAINTEXT_LISTENERS + _BROKER_COMMON
)
SECURE_BROKER_PROPERTIES = (
    "# written by `hallpass up --secure`: one combined broker+controller node in KRaft mode.\n"
    "# It holds the broker's own password: keep it mode 600.\n"
    + _BROKER_NODE + SECURE_LISTENERS + "{tls}" + _BROKER_COMMON
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
