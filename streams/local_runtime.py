"""The embedded local runtime: a real Apache Kafka broker (KRaft, one combined node) and an
Apicurio schema registry (Confluent-compatible API, KafkaSQL storage on that broker).

Artifacts come from Maven Central through the descriptor ``deploy/local/pom.xml`` into a cache
outside the repository; state lives in the data dir (default ``.hallpass/``) and survives
``down``/``up``. Every failure a user can meet raises :class:`RuntimeProblem` with a message
that says what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from streams.config import RUNTIME_STATE_FILE

REGISTRY_API_PATH = "/apis/ccompat/v7"
KAFKA_MIN_JAVA = 17
REGISTRY_MIN_JAVA = 21
ENV_CACHE_DIR = "HALLPASS_CACHE_DIR"
ENV_KAFKA_HOME = "KAFKA_HOME"
ENV_JAVA_HOME = "HALLPASS_JAVA_HOME"

Progress = Callable[[str], None]


class RuntimeProblem(RuntimeError):
    """Something in the environment stops the local runtime; the message says what to do."""


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


# ---------------------------------------------------------------------------------------------
# Descriptor and artifacts


def descriptor_path() -> Path:
    """``deploy/local/pom.xml`` in the repository, or its packaged copy in a wheel."""
    here = Path(__file__).resolve().parent
    repo_copy = here.parent / "deploy" / "local" / "pom.xml"
    for candidate in (repo_copy, here / "_deploy_local" / "pom.xml"):
        if candidate.is_file():
            return candidate
    raise RuntimeProblem("deploy/local/pom.xml is missing: reinstall hallpass")


def pinned_versions(pom: Path) -> dict[str, str]:
    """The ``<properties>`` of the descriptor (kafka.version, apicurio.version, ...)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom).getroot()  # noqa: S314 - our own file in the repository
    props = root.find("m:properties", ns)
    if props is None:
        raise RuntimeProblem(f"{pom}: no <properties> with the pinned versions")
    return {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in props}


def cache_dir(env: Mapping[str, str]) -> Path:
    if env.get(ENV_CACHE_DIR):
        return Path(env[ENV_CACHE_DIR]).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hallpass"


def _run_maven(pom: Path, args: list[str], what: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeProblem(
            f"Maven (mvn) is not installed, and it is needed to fetch {what} from Maven Central. "
            "Install it (`apt-get install maven`), or set KAFKA_HOME to an unpacked Apache Kafka, "
            "or point hallpass at an existing cluster with HALLPASS_BOOTSTRAP_SERVERS and "
            "HALLPASS_SCHEMA_REGISTRY_URL."
        )
    result = subprocess.run(
        [mvn, "-B", "-q", "-f", str(pom), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise RuntimeProblem(
            f"Maven could not fetch {what} from Maven Central (is the network or the Maven "
            f"repository reachable? check ~/.m2/settings.xml). Maven said:\n{tail}"
        )


def kafka_classpath(env: Mapping[str, str], progress: Progress) -> tuple[str, str]:
    """(classpath, version) of the Kafka broker: KAFKA_HOME if set, else the Maven cache."""
    if env.get(ENV_KAFKA_HOME):
        home = Path(env[ENV_KAFKA_HOME])
        libs = home / "libs"
        jars = sorted(libs.glob("kafka_2.13-*.jar"))
        if not jars:
            raise RuntimeProblem(
                f"KAFKA_HOME={home} is not an unpacked Apache Kafka distribution "
                "(no libs/kafka_2.13-*.jar): fix it or unset KAFKA_HOME to use Maven Central"
            )
        version = jars[0].stem.removeprefix("kafka_2.13-")
        return f"{libs}/*", version
    pom = descriptor_path()
    version = pinned_versions(pom)["kafka.version"]
    libs = cache_dir(env) / f"kafka-{version}" / "libs"
    _fetch_once(pom, libs, f"Apache Kafka {version}",
                ["-Pkafka", "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={libs}"], progress)
    return f"{libs}/*", version


def _fetch_once(pom: Path, target: Path, what: str, maven_args: list[str], progress: Progress,
                must_contain: str | None = None) -> None:
    """Resolve ``what`` with Maven into ``target`` unless a completed copy is there."""
    marker = target / ".complete"
    if marker.exists():
        return
    progress(f"fetching {what} from Maven Central into {target} (once) ...")
    if target.exists():
        shutil.rmtree(target)
    _run_maven(pom, maven_args, what)
    if must_contain and not (target / must_contain).is_file():
        raise RuntimeProblem(f"{what} in {target} has no {must_contain}")
    marker.write_text(what)


def registry_home(env: Mapping[str, str], progress: Progress) -> tuple[Path, str]:
    """(unpacked Apicurio Registry dir, version) from the Maven cache."""
    pom = descriptor_path()
    version = pinned_versions(pom)["apicurio.version"]
    home = cache_dir(env) / f"apicurio-{version}"
    _fetch_once(pom, home, f"Apicurio Registry {version}",
                ["-Pregistry", "dependency:unpack-dependencies", f"-DoutputDirectory={home}",
                 f"-DmarkersDirectory={home}/.markers"], progress,
                must_contain="quarkus-run.jar")
    return home, version


# ---------------------------------------------------------------------------------------------
# Java


def java_major(java: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_candidates(env: Mapping[str, str]) -> list[Path]:
    found: list[Path] = []
    for var in (ENV_JAVA_HOME, "JAVA_HOME"):
        if env.get(var):
            found.append(Path(env[var]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        found.extend(sorted(jvm.glob("*/bin/java")))
    unique: list[Path] = []
    for path in found:
        if path.is_file() and path.resolve() not in {p.resolve() for p in unique}:
            unique.append(path)
    return unique


def find_java(env: Mapping[str, str], minimum: int, purpose: str) -> Path:
    """The first Java of at least ``minimum``, preferring the one the user named."""
    seen: list[str] = []
    for java in java_candidates(env):
        major = java_major(java)
        seen.append(f"{java} ({major or '?'})")
        if major is not None and major >= minimum:
            return java
    where = ", ".join(seen) if seen else "none found"
    raise RuntimeProblem(
        f"{purpose} needs Java {minimum} or newer; Java found: {where}. Install a JDK "
        f"{minimum}+ (e.g. `apt-get install openjdk-{minimum}-jre-headless` where available) and "
        f"point {ENV_JAVA_HOME} or JAVA_HOME at it."
    )


# ---------------------------------------------------------------------------------------------
# Processes


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited child not yet reaped) counts as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _spawn(argv: list[str], log: Path, extra_env: Mapping[str, str], cwd: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(extra_env)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cwd, env=env, start_new_session=True,
        )
    return proc.pid


def _stop_pid(pid: int, grace_s: float) -> None:
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# The stack


BROKER_PROPERTIES = """\
# written by `hallpass up`; one combined broker+controller node in KRaft mode
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{kafka}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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


class LocalStack:
    """One local Kafka broker and one schema registry under a data dir."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        ports: Ports | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env: Mapping[str, str] = env if env is not None else dict(os.environ)
        self.ports = ports or Ports()
        self.progress: Progress = progress or (lambda _msg: None)

    # paths
    @property
    def state_file(self) -> Path:
        return self.data_dir / RUNTIME_STATE_FILE

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    # state
    def read_state(self) -> RuntimeState | None:
        try:
            raw = json.loads(self.state_file.read_text())
            return RuntimeState(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> RuntimeState | None:
        """The recorded state if at least one of its processes is alive."""
        state = self.read_state()
        if state and (pid_alive(state.kafka_pid) or pid_alive(state.registry_pid)):
            return state
        return None

    def status(self) -> dict[str, object]:
        state = self.read_state()
        if state is None:
            return {"running": False, "data_dir": str(self.data_dir)}
        kafka_up = pid_alive(state.kafka_pid)
        registry_up = pid_alive(state.registry_pid)
        return {
            "running": kafka_up and registry_up,
            "data_dir": str(self.data_dir),
            "bootstrap_servers": state.bootstrap_servers,
            "schema_registry_url": state.schema_registry_url,
            "kafka": {"pid": state.kafka_pid, "alive": kafka_up, "version": state.kafka_version,
                      "rss_bytes": rss_bytes(state.kafka_pid) if kafka_up else None},
            "registry": {"pid": state.registry_pid, "alive": registry_up, "kind": state.registry,
                         "rss_bytes": rss_bytes(state.registry_pid) if registry_up else None},
            "cluster_id": state.cluster_id,
        }

    # up
    def up(self, timeout_s: float = 180.0) -> RuntimeState:
        already = self.running()
        if already is not None:
            raise RuntimeProblem(
                f"hallpass is already running from {self.data_dir} "
                f"(Kafka at {already.bootstrap_servers}, registry at "
                f"{already.schema_registry_url}): use it, or stop it first with `hallpass down`"
            )
        for name, port in (("Kafka", self.ports.kafka), ("the KRaft controller",
                           self.ports.controller), ("the schema registry", self.ports.registry),
                           ("the registry's management interface", self.ports.registry + 1)):
            if not port_free(port):
                raise RuntimeProblem(
                    f"port {port} on 127.0.0.1 (for {name}) is already in use by another program: "
                    "stop that program, or choose other ports with --kafka-port / "
                    "--controller-port / --registry-port"
                )
        kafka_java = find_java(self.env, KAFKA_MIN_JAVA, f"Apache Kafka {KAFKA_MIN_JAVA}+ broker")
        registry_java = find_java(self.env, REGISTRY_MIN_JAVA, "Apicurio Registry 3")
        classpath, kafka_version = kafka_classpath(self.env, self.progress)
        apicurio, apicurio_version = registry_home(self.env, self.progress)

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        cluster_id = self._format_storage(kafka_java, classpath)

        started = time.monotonic()
        self.progress(f"starting Kafka {kafka_version} (KRaft) on 127.0.0.1:{self.ports.kafka} ...")
        broker_log = self.logs_dir / "broker.log"
        kafka_pid = _spawn(
            [str(kafka_java), "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={self._log4j_file()}", "-Dkafka.logs.dir=" +
             str(self.logs_dir), "-cp", classpath, "kafka.Kafka", str(self._broker_file())],
            self.logs_dir / "broker.out", {}, self.data_dir,
        )
        bootstrap = f"127.0.0.1:{self.ports.kafka}"
        registry_url = f"http://127.0.0.1:{self.ports.registry}{REGISTRY_API_PATH}"
        state = RuntimeState(
            bootstrap_servers=bootstrap, schema_registry_url=registry_url, kafka_pid=kafka_pid,
            registry_pid=0, kafka_port=self.ports.kafka, controller_port=self.ports.controller,
            registry_port=self.ports.registry, cluster_id=cluster_id,
            kafka_version=kafka_version, registry=f"apicurio-registry {apicurio_version}",
            started_at=time.time(),
        )
        self._write_state(state)
        try:
            self._wait_for_kafka(kafka_pid, bootstrap, broker_log, started + timeout_s)
            self.progress(
                f"Kafka ready in {time.monotonic() - started:.1f}s; starting Apicurio Registry "
                f"{apicurio_version} on 127.0.0.1:{self.ports.registry} ..."
            )
            registry_pid = _spawn(
                [str(registry_java), "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC",
                 "-jar", str(apicurio / "quarkus-run.jar")],
                self.logs_dir / "registry.log",
                {
                    "APICURIO_STORAGE_KIND": "kafkasql",
                    "APICURIO_KAFKASQL_BOOTSTRAP_SERVERS": bootstrap,
                    "QUARKUS_HTTP_HOST": "127.0.0.1",
                    "QUARKUS_HTTP_PORT": str(self.ports.registry),
                    # health/metrics interface: on loopback, next to the registry port
                    "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
                    "QUARKUS_MANAGEMENT_PORT": str(self.ports.registry + 1),
                    "QUARKUS_LOG_CONSOLE_JSON": "false",
                },
                self.data_dir,
            )
            state = RuntimeState(**{**asdict(state), "registry_pid": registry_pid})
            self._write_state(state)
            self._wait_for_registry(registry_pid, registry_url, started + timeout_s)
            self._set_default_compatibility(registry_url)
        except BaseException:
            self.down(quiet=True)
            raise
        self.progress(f"ready in {time.monotonic() - started:.1f}s")
        return state

    def _broker_file(self) -> Path:
        path = self.data_dir / "server.properties"
        path.write_text(BROKER_PROPERTIES.format(
            kafka=self.ports.kafka, controller=self.ports.controller, log_dir=self.kafka_dir))
        return path

    def _log4j_file(self) -> Path:
        path = self.data_dir / "log4j2.properties"
        path.write_text(LOG4J2_PROPERTIES.format(log=self.logs_dir / "broker.log"))
        return path

    def _format_storage(self, java: Path, classpath: str) -> str:
        """Format the KRaft log dir once; refuse a data dir that belongs to another cluster."""
        meta = self.kafka_dir / "meta.properties"
        recorded = (self.cluster_id_file.read_text().strip()
                    if self.cluster_id_file.exists() else None)
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
        self.progress(f"formatting a new KRaft cluster {cluster_id} in {self.kafka_dir} ...")
        result = subprocess.run(
            [str(java), f"-Dlog4j2.configurationFile={self._log4j_file()}", "-cp", classpath,
             # `--cluster-id=` form: a random id may start with "-", which would read as a flag
             "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c",
             str(self._broker_file())],
            capture_output=True, text=True, check=False, cwd=self.data_dir,
        )
        if result.returncode != 0:
            raise RuntimeProblem(
                "formatting the Kafka storage failed:\n" + (result.stdout + result.stderr).strip()
            )
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _write_state(self, state: RuntimeState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self.state_file)

    def _wait_for_kafka(self, pid: int, bootstrap: str, log: Path, deadline: float) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise RuntimeProblem(
                    f"the Kafka broker exited during start; the end of {log}:\n{log_tail(log)}"
                )
            try:
                admin.list_topics(timeout=1.0)
                return
            except KafkaException:
                time.sleep(0.2)
        raise RuntimeProblem(f"Kafka did not answer in time; the end of {log}:\n{log_tail(log)}")

    def _wait_for_registry(self, pid: int, url: str, deadline: float) -> None:
        log = self.logs_dir / "registry.log"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    raise RuntimeProblem(
                        f"the schema registry exited during start; the end of {log}:\n"
                        f"{log_tail(log)}"
                    )
                try:
                    if client.get(f"{url}/subjects").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        raise RuntimeProblem(
            f"the schema registry did not answer in time; the end of {log}:\n{log_tail(log)}"
        )

    @staticmethod
    def _set_default_compatibility(url: str) -> None:
        """Confluent's default is BACKWARD; Apicurio starts with none, so say it once."""
        response = httpx.put(
            f"{url}/config", json={"compatibility": "BACKWARD"},
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"}, timeout=10.0,
        )
        if response.status_code != 200:
            raise RuntimeProblem(
                f"could not set the registry's default compatibility: {response.text}"
            )

    # down
    def down(self, quiet: bool = False) -> bool:
        """Stop what ``up`` started. False if nothing was running."""
        state = self.read_state()
        alive = state is not None and (pid_alive(state.kafka_pid) or pid_alive(state.registry_pid))
        if state is not None:
            if state.registry_pid:
                if not quiet:
                    self.progress(f"stopping the schema registry (pid {state.registry_pid}) ...")
                _stop_pid(state.registry_pid, grace_s=20.0)
            if not quiet:
                self.progress(f"stopping Kafka (pid {state.kafka_pid}) ...")
            _stop_pid(state.kafka_pid, grace_s=45.0)
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
        return alive


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
