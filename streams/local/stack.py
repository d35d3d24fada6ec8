"""The local stack: a real Apache Kafka broker (KRaft, one combined node) and an
Apicurio schema registry (Confluent-compatible API, KafkaSQL storage on that broker).

Artifacts come from Maven Central through the descriptor ``deploy/local/pom.xml`` into a cache
outside the repository; state lives in the data dir (default ``.hallpass/``) and survives
``down``/``up``. Every failure a user can meet raises :class:`RuntimeProblem` with a message
that says what to do.

With ``secure`` (``hallpass up --secure``) the broker authenticates every client with
SASL/SCRAM-SHA-512 and authorizes it with the ``StandardAuthorizer``, deny by default; the
admin (a super user), the broker's own principal and the registry's principal get SCRAM
credentials when the storage is formatted, with random passwords that live only in files of
mode 600 in the data dir (never on a command line, never printed). ``tls`` adds TLS on the
client listener with a local CA. See :data:`SECURE_LISTENERS` for the listener design.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from streams.config import RUNTIME_STATE_FILE
from streams.local.artifacts import (
    KAFKA_MIN_JAVA,
    REGISTRY_MIN_JAVA,
    find_java,
    kafka_classpath,
    registry_home,
)
from streams.local.broker import (
    BROKER_PROPERTIES,
    LOG4J2_PROPERTIES,
    SECURE_BROKER_PROPERTIES,
    SECURE_TLS,
    cluster_properties,
    node_ports,
)
from streams.local.errors import Progress, RuntimeProblem
from streams.local.processes import (
    _spawn,
    _stop_pid,
    _stop_pids,
    log_tail,
    pid_alive,
    port_free,
    rss_bytes,
)
from streams.local.security import (
    ADMIN_PROPERTIES_FILE,
    ADMIN_USER,
    BROKER_USER,
    REGISTRY_API_USER,
    REGISTRY_CONFIG_FILE,
    REGISTRY_READER_USER,
    REGISTRY_READER_USER_INFO_FILE,
    REGISTRY_USER_INFO_FILE,
    SECRETS_FILE,
    TLS_DIR,
    StackSecrets,
    admin_client_properties,
    ensure_local_ca,
    java_argfile,
    registry_http_config,
    registry_kafka_config,
    scram_format_args,
)
from streams.security.acl_plan import (
    DEFAULT_ROLES,
    registry_rules,
)
from streams.security.client_settings import (
    ClientSettingsError,
    check_private,
    format_properties,
    read_properties,
    write_private,
)

REGISTRY_API_PATH = "/apis/ccompat/v7"


@dataclass(frozen=True)
class Ports:
    kafka: int = 9092
    controller: int = 9093
    registry: int = 8081


@dataclass(frozen=True)
class RuntimeState:
    """What ``up`` recorded in ``<data dir>/runtime.json``."""

    bootstrap_servers: str
    schema_registry_url: str
    kafka_pid: int
    registry_pid: int
    kafka_port: int
    controller_port: int
    registry_port: int
    cluster_id: str
    kafka_version: str
    registry: str
    started_at: float
    #: SASL/SCRAM and ACLs on the client listener (``up --secure``); TLS as well
    secure: bool = False
    tls: bool = False
    #: the admin's client properties (mode 600), "" unless secure
    admin_properties: str = ""
    #: the registry credentials of hallpass's own commands (``user:password``, mode 600) and
    #: the read-only credentials for vendors and auditors; "" unless secure
    registry_user_info: str = ""
    registry_reader_user_info: str = ""
    #: the CA the registry's HTTPS certificate is signed by; "" unless TLS
    registry_ca: str = ""
    #: every broker node (``up --brokers N``): id, port, controller_port, pid; a state of
    #: a single broker written before there were clusters has none (its node is kafka_pid's)
    brokers: list[dict[str, int]] = field(default_factory=list)

    def nodes(self) -> list[dict[str, int]]:
        return self.brokers or [
            {
                "id": 1,
                "port": self.kafka_port,
                "controller_port": self.controller_port,
                "pid": self.kafka_pid,
            }
        ]


class LocalStack:
    """Local Kafka brokers (one, or a cluster of ``brokers`` combined KRaft nodes) and one
    schema registry under a data dir.

    Node 1 keeps its data in ``kafka/`` and its configuration in ``server.properties``, node
    n > 1 in ``kafka-<n>/`` and ``server-<n>.properties``; the count is fixed when the data
    dir is formatted. ``up`` starts whatever of a recorded stack is not running (a broker or
    the registry that crashed) and leaves alone what runs.
    """

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        ports: Ports | None = None,
        progress: Progress | None = None,
        secure: bool = False,
        tls: bool = False,
        brokers: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: broker nodes asked for; None: as the data dir was formatted (1 if new)
        self.brokers = brokers
        self.env: Mapping[str, str] = env if env is not None else dict(os.environ)
        self.ports = ports or Ports()
        self.progress: Progress = progress or (lambda _msg: None)
        #: SASL/SCRAM + ACLs (TLS implies it); a data dir formatted secure always runs secure
        self.secure = secure or tls
        self.tls = tls
        self._secrets: StackSecrets | None = None

    # paths
    @property
    def state_file(self) -> Path:
        return self.data_dir / RUNTIME_STATE_FILE

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    def node_dir(self, node: int) -> Path:
        return self.kafka_dir if node == 1 else self.data_dir / f"kafka-{node}"

    def _node_file(self, node: int, stem: str, suffix: str) -> str:
        return f"{stem}{suffix}" if node == 1 else f"{stem}-{node}{suffix}"

    def formatted_nodes(self) -> int:
        """How many broker nodes the data dir was formatted with (0: not formatted)."""
        if not (self.kafka_dir / "meta.properties").exists():
            return 0
        count = 1
        while (self.node_dir(count + 1) / "meta.properties").exists():
            count += 1
        return count

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / SECRETS_FILE

    @property
    def admin_properties_file(self) -> Path:
        return self.data_dir / ADMIN_PROPERTIES_FILE

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / TLS_DIR

    # state
    def read_state(self) -> RuntimeState | None:
        try:
            raw = json.loads(self.state_file.read_text())
            return RuntimeState(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def _alive(self, pid: int) -> bool:
        """A process of this stack runs as ``pid``: alive, and working in this data dir (a
        pid recorded before a reboot may since belong to another program)."""
        if not pid_alive(pid):
            return False
        try:
            # a data dir deleted under it (" (deleted)") is still this stack's: it holds the ports
            cwd = str(Path(f"/proc/{pid}/cwd").readlink()).removesuffix(" (deleted)")
        except OSError:
            return True  # no /proc to ask: trust the pid
        return Path(cwd) == self.data_dir.resolve()

    def running(self) -> RuntimeState | None:
        """The recorded state if at least one of its processes is alive."""
        state = self.read_state()
        if state and (
            any(self._alive(n["pid"]) for n in state.nodes()) or self._alive(state.registry_pid)
        ):
            return state
        return None

    def down_parts(self, state: RuntimeState) -> list[str]:
        """What of a recorded stack is not running, each as a user would name it."""
        down = [
            f"Kafka broker {n['id']} (port {n['port']}, pid {n['pid']})"
            for n in state.nodes()
            if not self._alive(n["pid"])
        ]
        if not self._alive(state.registry_pid):
            down.append(
                f"the schema registry (port {state.registry_port}, pid {state.registry_pid})"
            )
        return down

    def status(self) -> dict[str, object]:
        state = self.read_state()
        if state is None:
            return {"running": False, "data_dir": str(self.data_dir)}
        brokers = [
            {
                **node,
                "alive": self._alive(node["pid"]),
                "rss_bytes": rss_bytes(node["pid"]) if self._alive(node["pid"]) else None,
            }
            for node in state.nodes()
        ]
        kafka_up = all(b["alive"] for b in brokers)
        registry_up = self._alive(state.registry_pid)
        return {
            "running": kafka_up and registry_up,
            "data_dir": str(self.data_dir),
            "bootstrap_servers": state.bootstrap_servers,
            "schema_registry_url": state.schema_registry_url,
            "kafka": {
                "pid": state.kafka_pid,
                "alive": kafka_up,
                "version": state.kafka_version,
                "rss_bytes": brokers[0]["rss_bytes"],
            },
            "brokers": brokers,
            "registry": {
                "pid": state.registry_pid,
                "alive": registry_up,
                "kind": state.registry,
                "rss_bytes": rss_bytes(state.registry_pid) if registry_up else None,
            },
            "down": self.down_parts(state),
            "cluster_id": state.cluster_id,
            "secure": state.secure,
            "tls": state.tls,
            **({"admin_properties": state.admin_properties} if state.admin_properties else {}),
            **(
                {
                    "registry_user_info": state.registry_user_info,
                    "registry_reader_user_info": state.registry_reader_user_info,
                }
                if state.registry_user_info
                else {}
            ),
        }

    # up
    def up(self, timeout_s: float = 180.0) -> RuntimeState:
        """Start the stack and wait until it answers. Of a recorded stack that partly runs
        (a broker or the registry crashed), start only what is not running, on the
        recorded ports; a stack that wholly runs is refused."""
        before = self._partly_running()
        nodes = self._node_count()
        old_pids = {n["id"]: n["pid"] for n in before.nodes()} if before else {}
        dead = [n for n in range(1, nodes + 1) if not self._alive(old_pids.get(n, 0))]
        start_registry = before is None or not self._alive(before.registry_pid)
        self._check_ports(nodes, dead, start_registry)
        kafka_java = find_java(self.env, KAFKA_MIN_JAVA, f"Apache Kafka {KAFKA_MIN_JAVA}+ broker")
        registry_java = find_java(self.env, REGISTRY_MIN_JAVA, "Apicurio Registry 3")
        classpath, kafka_version = kafka_classpath(self.env, self.progress)
        apicurio, apicurio_version = registry_home(self.env, self.progress)

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        ca_file = self._prepare_security()
        cluster_id = ""
        for node in range(1, nodes + 1):
            cluster_id = self._format_storage(kafka_java, classpath, node)
        admin_properties = self._write_admin_properties(ca_file)
        registry_users = self._write_registry_user_info()
        client_properties = (
            read_properties(admin_properties, "admin properties file") if admin_properties else {}
        )

        started = time.monotonic()
        mode = ("SASL/SCRAM + TLS" if self.tls else "SASL/SCRAM") if self.secure else "plaintext"
        pids = dict(old_pids)
        for node in dead:
            port = node_ports(self.ports.kafka, self.ports.controller, node)[0]
            self.progress(
                f"starting Kafka {kafka_version} (KRaft, {mode}"
                f"{f', node {node} of {nodes}' if nodes > 1 else ''}) on "
                f"127.0.0.1:{port} ..."
            )
            pids[node] = self._spawn_broker(kafka_java, classpath, node)
        brokers = [
            {
                "id": n,
                "port": node_ports(self.ports.kafka, self.ports.controller, n)[0],
                "controller_port": node_ports(self.ports.kafka, self.ports.controller, n)[1],
                "pid": pids[n],
            }
            for n in range(1, nodes + 1)
        ]
        bootstrap = ",".join(f"127.0.0.1:{b['port']}" for b in brokers)
        scheme = "https" if ca_file else "http"
        registry_url = f"{scheme}://127.0.0.1:{self.ports.registry}{REGISTRY_API_PATH}"
        state = RuntimeState(
            bootstrap_servers=bootstrap,
            schema_registry_url=registry_url,
            kafka_pid=pids[1],
            registry_pid=0 if start_registry or before is None else before.registry_pid,
            kafka_port=self.ports.kafka,
            controller_port=self.ports.controller,
            registry_port=self.ports.registry,
            cluster_id=cluster_id,
            kafka_version=kafka_version,
            registry=f"apicurio-registry {apicurio_version}",
            started_at=before.started_at if before else time.time(),
            secure=self.secure,
            tls=self.tls,
            admin_properties=str(admin_properties or ""),
            registry_user_info=str(registry_users[0]) if registry_users else "",
            registry_reader_user_info=str(registry_users[1]) if registry_users else "",
            registry_ca=str(ca_file or ""),
            brokers=brokers,
        )
        self._write_state(state)
        try:
            self._wait_for_kafka(state, dead, started + timeout_s, client_properties)
            if start_registry:
                if self.secure:
                    self._grant_registry(bootstrap, client_properties)
                if nodes > 1:
                    self._create_registry_topics(bootstrap, started + timeout_s)
                self.progress(
                    f"Kafka ready in {time.monotonic() - started:.1f}s; starting Apicurio "
                    f"Registry {apicurio_version} on 127.0.0.1:{self.ports.registry} ..."
                )
                state = RuntimeState(
                    **{
                        **asdict(state),
                        "registry_pid": self._spawn_registry(
                            registry_java, apicurio, bootstrap, ca_file
                        ),
                    }
                )
                self._write_state(state)
            http = self._registry_http(state)
            with http:
                self._wait_for_registry(http, state.registry_pid, registry_url, started + timeout_s)
                self._set_default_compatibility(http, registry_url)
        except BaseException:
            if before is None:
                self.down(quiet=True)
            else:  # leave alone what ran before
                for pid in [pids[n] for n in dead] + (
                    [state.registry_pid] if start_registry else []
                ):
                    _stop_pid(pid, grace_s=20.0)
            raise
        self.progress(f"ready in {time.monotonic() - started:.1f}s")
        return state

    def _partly_running(self) -> RuntimeState | None:
        """The recorded state of a stack of which something runs but not all (whose ports,
        broker count and security ``up`` then keeps); None if nothing runs; refuses a stack
        that wholly runs."""
        state = self.running()
        if state is None:
            return None
        down = self.down_parts(state)
        if not down:
            raise RuntimeProblem(
                f"hallpass is already running from {self.data_dir} "
                f"(Kafka at {state.bootstrap_servers}, registry at "
                f"{state.schema_registry_url}): use it, or stop it first with `hallpass down`"
            )
        self.progress(
            f"not running: {'; '.join(down)}. Starting "
            f"{'it' if len(down) == 1 else 'them'} again (what runs is left alone)"
        )
        self.ports = Ports(
            kafka=state.kafka_port, controller=state.controller_port, registry=state.registry_port
        )
        self.brokers = len(state.nodes())
        self.secure, self.tls = state.secure, state.tls
        return state

    def _node_count(self) -> int:
        """The broker nodes to run: as asked, which must be as the data dir was formatted."""
        formatted = self.formatted_nodes()
        wanted = self.brokers or formatted or 1
        if formatted and wanted != formatted:
            raise RuntimeProblem(
                f"the data dir {self.data_dir} was formatted for {formatted} broker"
                f"{'s' if formatted > 1 else ''}: start it with --brokers {formatted}, or use "
                f"another --data-dir for {wanted}"
            )
        if wanted == 2 or not 1 <= wanted <= 9:
            raise RuntimeProblem(
                f"--brokers {wanted}: run 1 broker, or a cluster of 3 to 9 (every topic has "
                "3 replicas and needs 2 in sync, so a cluster needs at least 3)"
            )
        if wanted > 1 and self.secure:
            raise RuntimeProblem(
                "--secure runs a single broker: start the secure stack without --brokers, "
                "or a cluster without --secure"
            )
        return wanted

    def _check_ports(self, nodes: int, start_nodes: list[int], registry: bool) -> None:
        wanted: list[tuple[str, int]] = []
        for node in range(1, nodes + 1):
            kafka, controller = node_ports(self.ports.kafka, self.ports.controller, node)
            suffix = f" of broker {node}" if nodes > 1 else ""
            if node in start_nodes:
                wanted += [(f"Kafka{suffix}", kafka), (f"the KRaft controller{suffix}", controller)]
        if registry:
            wanted += [
                ("the schema registry", self.ports.registry),
                ("the registry's management interface", self.ports.registry + 1),
            ]
        taken: dict[int, str] = {}
        for name, port in wanted:
            if port in taken:
                raise RuntimeProblem(
                    f"port {port} would serve both {taken[port]} and {name}: broker n uses "
                    "--kafka-port + 2(n-1) and --controller-port + 2(n-1), the registry "
                    "--registry-port and the next; choose ports far enough apart"
                )
            taken[port] = name
            if not port_free(port):
                raise RuntimeProblem(
                    f"port {port} on 127.0.0.1 (for {name}) is already in use by another program: "
                    "stop that program, or choose other ports with --kafka-port / "
                    "--controller-port / --registry-port"
                )

    @staticmethod
    def _create_registry_topics(bootstrap: str, deadline: float) -> None:
        """The registry's KafkaSQL topics, as it would create them (kept forever), made
        before it starts: on a cluster the registry, having created them, reads them before
        every broker knows them and exits with UnknownTopicOrPartition."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        names = ["kafkasql-journal", "kafkasql-snapshots"]
        config = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
        existing = set(admin.list_topics(timeout=30).topics)
        missing = [NewTopic(n, config=config) for n in names if n not in existing]
        for future in admin.create_topics(missing).values() if missing else []:
            with contextlib.suppress(KafkaException):  # made meanwhile: as good
                future.result(timeout=30)
        while time.monotonic() < deadline:
            topics = admin.list_topics(timeout=10).topics
            if all(
                n in topics
                and topics[n].partitions
                and all(
                    p.leader >= 0 and len(p.isrs) == len(p.replicas)
                    for p in topics[n].partitions.values()
                )
                for n in names
            ):
                return
            time.sleep(0.5)

    def _spawn_broker(self, java: Path, classpath: str, node: int) -> int:
        return _spawn(
            [
                str(java),
                "-Xms256m",
                "-Xmx768m",
                "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={self._log4j_file(node)}",
                "-Dkafka.logs.dir=" + str(self.logs_dir),
                "-cp",
                classpath,
                "kafka.Kafka",
                str(self._broker_file(node)),
            ],
            self.logs_dir / self._node_file(node, "broker", ".out"),
            {},
            self.data_dir,
        )

    def _spawn_registry(
        self, java: Path, apicurio: Path, bootstrap: str, ca_file: Path | None
    ) -> int:
        registry_env = {"QUARKUS_HTTP_PORT": str(self.ports.registry)}
        if self.secure:
            registry_env["QUARKUS_CONFIG_LOCATIONS"] = str(self._registry_config(ca_file))
        if ca_file:  # HTTPS only, on the registry port
            registry_env = {
                **registry_env,
                "QUARKUS_HTTP_SSL_PORT": str(self.ports.registry),
                "QUARKUS_HTTP_PORT": "0",
            }
        return _spawn(
            [
                str(java),
                "-Xms128m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-jar",
                str(apicurio / "quarkus-run.jar"),
            ],
            self.logs_dir / "registry.log",
            {
                "APICURIO_STORAGE_KIND": "kafkasql",
                "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS": bootstrap,
                "QUARKUS_HTTP_HOST": "127.0.0.1",
                # health/metrics interface: on loopback, next to the registry port
                "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
                "QUARKUS_MANAGEMENT_PORT": str(self.ports.registry + 1),
                "QUARKUS_LOG_CONSOLE_JSON": "false",
                **registry_env,
            },
            self.data_dir,
        )

    def _broker_file(self, node: int = 1) -> Path:
        path = self.data_dir / self._node_file(node, "server", ".properties")
        nodes = self.brokers or self.formatted_nodes() or 1
        if self._secrets is None:
            path.write_text(
                cluster_properties(
                    BROKER_PROPERTIES.format(
                        kafka=self.ports.kafka,
                        controller=self.ports.controller,
                        log_dir=self.node_dir(node),
                    ),
                    node,
                    nodes,
                    self.ports.kafka,
                    self.ports.controller,
                )
            )
            return path
        write_private(
            path,
            SECURE_BROKER_PROPERTIES.format(
                kafka=self.ports.kafka,
                controller=self.ports.controller,
                log_dir=self.kafka_dir,
                client_protocol="SASL_SSL" if self.tls else "SASL_PLAINTEXT",
                broker_user=BROKER_USER,
                broker_password=self._secrets.broker_password,
                admin_user=ADMIN_USER,
                tls=SECURE_TLS.format(tls_dir=self.tls_dir) if self.tls else "",
            ),
        )
        return path

    # secure mode
    def _prepare_security(self) -> Path | None:
        """Settle the security mode of this data dir and make what it needs; returns the CA
        file clients trust (TLS), else None.

        SCRAM credentials can only be bootstrapped when the storage is formatted, so a data
        dir formatted without ``--secure`` cannot become secure; one formatted with it always
        runs secure (its data is only for authenticated, authorized clients).
        """
        formatted = (self.kafka_dir / "meta.properties").exists()
        recorded = self._read_secrets()
        if recorded is None and formatted and self.secure:
            raise RuntimeProblem(
                f"the data dir {self.data_dir} was formatted without --secure: its broker has "
                "no SCRAM credentials, and they can only be created when a data dir is "
                "formatted. Use another --data-dir for the secure stack (or start this one "
                "without --secure)."
            )
        if recorded is not None and not self.secure:
            self.progress(
                f"the data dir {self.data_dir} was formatted with --secure: starting it secure"
            )
            self.secure = True
        if not self.secure:
            return None
        self.data_dir.chmod(0o700)  # student data and secrets: its owner's only
        if recorded is None:
            recorded = StackSecrets.generate()
            write_private(self.secrets_file, json.dumps(asdict(recorded), indent=2))
        elif not (recorded.registry_api_password and recorded.registry_reader_password):
            recorded = recorded.completed()  # formatted before the registry had users
            write_private(self.secrets_file, json.dumps(asdict(recorded), indent=2))
        self._secrets = recorded
        return ensure_local_ca(self.tls_dir, self.progress) if self.tls else None

    def _read_secrets(self) -> StackSecrets | None:
        if not self.secrets_file.exists():
            return None
        try:
            check_private(self.secrets_file, "secrets file")
        except ClientSettingsError as exc:
            raise RuntimeProblem(str(exc)) from exc
        try:
            return StackSecrets(**json.loads(self.secrets_file.read_text()))
        except (ValueError, TypeError) as exc:
            raise RuntimeProblem(
                f"{self.secrets_file} is damaged ({type(exc).__name__}); the broker's "
                "credentials are in it: restore it, or start afresh with a new --data-dir"
            ) from exc

    def _write_registry_user_info(self) -> tuple[Path, Path] | None:
        """The registry credentials (``user:password``, mode 600): hallpass's own, which its
        commands on this data dir use by themselves, and the read-only one to hand to vendors
        and auditors (``HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE``)."""
        if self._secrets is None:
            return None
        own = self.data_dir / REGISTRY_USER_INFO_FILE
        reader = self.data_dir / REGISTRY_READER_USER_INFO_FILE
        write_private(own, f"{REGISTRY_API_USER}:{self._secrets.registry_api_password}\n")
        write_private(reader, f"{REGISTRY_READER_USER}:{self._secrets.registry_reader_password}\n")
        return own, reader

    def _write_admin_properties(self, ca_file: Path | None) -> Path | None:
        if self._secrets is None:
            return None
        write_private(
            self.admin_properties_file,
            format_properties(
                admin_client_properties(self._secrets, ca_file),
                header="hallpass admin (a super user) of the local broker, written by "
                "`hallpass up --secure`.\nIt holds the admin's password: keep it mode 600.",
            ),
        )
        return self.admin_properties_file

    def _registry_config(self, ca_file: Path | None) -> Path:
        assert self._secrets is not None
        path = self.data_dir / REGISTRY_CONFIG_FILE
        write_private(
            path,
            format_properties(
                {
                    **registry_kafka_config(self._secrets, ca_file),
                    **registry_http_config(self._secrets, self.tls_dir if ca_file else None),
                },
                header="the schema registry's Kafka client, written by `hallpass up --secure`; "
                "it holds the registry's password: keep it mode 600",
            ),
        )
        return path

    def _grant_registry(self, bootstrap: str, client_properties: Mapping[str, str]) -> None:
        """Give the registry's principal the ACLs of its KafkaSQL storage (the same rules
        as `hallpass acl plan`'s, so `acl apply` finds them in place)."""
        from streams.security.acl_apply import create_rules

        config: dict[str, str | int] = {
            "bootstrap.servers": bootstrap,
            "log_level": 0,
            **client_properties,
        }
        create_rules(config, registry_rules(DEFAULT_ROLES.registry))

    def _log4j_file(self, node: int = 1) -> Path:
        path = self.data_dir / self._node_file(node, "log4j2", ".properties")
        path.write_text(LOG4J2_PROPERTIES.format(log=self.broker_log(node)))
        return path

    def broker_log(self, node: int = 1) -> Path:
        return self.logs_dir / self._node_file(node, "broker", ".log")

    def _format_storage(self, java: Path, classpath: str, node: int = 1) -> str:
        """Format a node's KRaft log dir once; refuse a data dir that belongs to another
        cluster."""
        meta = self.node_dir(node) / "meta.properties"
        recorded = (
            self.cluster_id_file.read_text().strip() if self.cluster_id_file.exists() else None
        )
        if meta.exists():
            on_disk = _read_properties(meta).get("cluster.id")
            if recorded is None or on_disk != recorded:
                raise RuntimeProblem(
                    f"the data dir {self.data_dir} holds Kafka data of another cluster "
                    f"(cluster id {on_disk}, expected {recorded or 'none recorded'}): choose "
                    "another --data-dir, or delete this one to start afresh (its data is lost)"
                )
            return on_disk
        cluster_id = recorded or _kafka_uuid()
        self.progress(f"formatting a new KRaft cluster {cluster_id} in {self.node_dir(node)} ...")
        # `--cluster-id=` form: a random id may start with "-", which would read as a flag
        tool = [
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(self._broker_file(node)),
        ]
        argfile = self.data_dir / "format.args"
        if self._secrets is not None:
            # the SCRAM credentials go through an argument file, off the command line
            write_private(argfile, java_argfile(tool + scram_format_args(self._secrets)))
            tool = [f"@{argfile}"]
        try:
            result = subprocess.run(
                [
                    str(java),
                    f"-Dlog4j2.configurationFile={self._log4j_file(node)}",
                    "-cp",
                    classpath,
                    *tool,
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=self.data_dir,
            )
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeProblem(
                "formatting the Kafka storage failed:\n"
                + self._redact(result.stdout + result.stderr).strip()
            )
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _redact(self, text: str) -> str:
        return self._secrets.redact(text) if self._secrets else text

    def _write_state(self, state: RuntimeState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self.state_file)

    def _wait_for_kafka(
        self,
        state: RuntimeState,
        started: list[int],
        deadline: float,
        client_properties: Mapping[str, str] | None = None,
    ) -> None:
        """Until every broker node is in the cluster's metadata (a node that has not joined
        the quorum, or is fenced, is not); a node started now that exits is an error."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient

        errors: list[str] = []

        def on_error(err: KafkaError) -> None:
            errors.append(str(err.str()))

        config: dict[str, Any] = {
            "bootstrap.servers": state.bootstrap_servers,
            "log_level": 0,
            "error_cb": on_error,
            **(client_properties or {}),
        }
        admin = AdminClient(config)
        nodes = state.nodes()
        while time.monotonic() < deadline:
            for node in nodes:
                if node["id"] in started and not pid_alive(node["pid"]):
                    log = self.broker_log(node["id"])
                    which = f" {node['id']}" if len(nodes) > 1 else ""
                    raise RuntimeProblem(
                        f"the Kafka broker{which} exited "
                        f"during start; the end of {log}:\n" + self._redact(log_tail(log))
                    )
            try:
                if len(admin.list_topics(timeout=1.0).brokers) >= len(nodes):
                    return
                time.sleep(0.2)
            except KafkaException:
                time.sleep(0.2)
        said = f" (the last client error: {self._redact(errors[-1])})" if errors else ""
        log = self.broker_log(started[0] if started else 1)
        raise RuntimeProblem(
            f"Kafka did not answer in time{said}; the end of {log}:\n" + self._redact(log_tail(log))
        )

    @staticmethod
    def _registry_http(state: RuntimeState) -> httpx.Client:
        """An HTTP client of the registry as hallpass's own registry user (secure stack)."""
        auth = None
        if state.registry_user_info:
            user, _, password = Path(state.registry_user_info).read_text().strip().partition(":")
            auth = httpx.BasicAuth(user, password)
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=state.registry_ca) if state.registry_ca else True
        )
        return httpx.Client(timeout=10.0, auth=auth, verify=verify)

    def _wait_for_registry(self, client: httpx.Client, pid: int, url: str, deadline: float) -> None:
        log = self.logs_dir / "registry.log"
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise RuntimeProblem(
                    f"the schema registry exited during start; the end of {log}:\n{log_tail(log)}"
                )
            try:
                if client.get(f"{url}/subjects", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeProblem(
            f"the schema registry did not answer in time; the end of {log}:\n{log_tail(log)}"
        )

    @staticmethod
    def _set_default_compatibility(client: httpx.Client, url: str) -> None:
        """Confluent's default is BACKWARD; Apicurio starts with none, so say it once."""
        response = client.put(
            f"{url}/config",
            json={"compatibility": "BACKWARD"},
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        if response.status_code != 200:
            raise RuntimeProblem(
                f"could not set the registry's default compatibility: {response.text}"
            )

    # down
    def down(self, quiet: bool = False) -> bool:
        """Stop what ``up`` started and still runs. False if nothing was running."""
        state = self.read_state()
        if state is None:
            return False
        registry = state.registry_pid if self._alive(state.registry_pid) else 0
        brokers = [n for n in state.nodes() if self._alive(n["pid"])]
        if registry:
            if not quiet:
                self.progress(f"stopping the schema registry (pid {registry}) ...")
            _stop_pid(registry, grace_s=20.0)
        if brokers and not quiet:
            self.progress(
                "stopping Kafka ("
                + ", ".join(
                    f"{'broker ' + str(n['id']) + ' ' if len(state.nodes()) > 1 else ''}"
                    f"pid {n['pid']}"
                    for n in brokers
                )
                + ") ..."
            )
        # all at once: a cluster's last nodes would wait for a quorum already gone
        _stop_pids([n["pid"] for n in brokers], grace_s=45.0)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        return bool(registry or brokers)


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def describe(state: RuntimeState | Mapping[str, object]) -> Iterable[str]:
    data = asdict(state) if isinstance(state, RuntimeState) else dict(state)
    yield f"Kafka            {data.get('bootstrap_servers')}"
    yield f"schema registry  {data.get('schema_registry_url')}"
    if data.get("secure"):
        mode = "SASL_SSL" if data.get("tls") else "SASL_PLAINTEXT"
        yield f"security         {mode}, SCRAM-SHA-512, ACLs (deny by default)"
        yield f"admin settings   {data.get('admin_properties')} (mode 600)"
        if data.get("registry_user_info"):
            yield (
                "registry users   basic authentication; hallpass's own in "
                f"{data.get('registry_user_info')}, read-only for vendors in "
                f"{data.get('registry_reader_user_info')} (mode 600)"
            )
