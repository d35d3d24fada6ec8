"""Publish records with the real Java Kafka client (``tests/java/JavaProducer.java``).

SIS integrations and Kafka Connect write with Java's ``KafkaProducer``, whose default
partitioner places a keyed record by murmur2 of the key; these helpers let a test write input
exactly as they do, through the Kafka client jars of the local runtime (Maven Central, fetched
once by :func:`streams.local.artifacts.kafka_classpath`), and learn where each record landed.

The program is compiled once per source (and Kafka version) into the hallpass cache
(``~/.cache/hallpass/java-producer-<hash>/``; ``HALLPASS_CACHE_DIR`` moves it). It needs a JDK
17+ (``javac``; on Debian/Ubuntu ``apt-get install openjdk-17-jdk-headless``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from streams.config import Connection
from streams.local.artifacts import KAFKA_MIN_JAVA, cache_dir, find_java, kafka_classpath
from streams.local.errors import RuntimeProblem

SOURCE = Path(__file__).resolve().parent / "java" / "JavaProducer.java"
MAIN_CLASS = "JavaProducer"
PURPOSE = "the Java producer"

#: Log4j 2 (the Kafka libs' slf4j backend): warnings and errors only, on stderr.
LOG4J2_PROPERTIES = """\
# written by tests/java_producer.py: the Java producer logs warnings to stderr
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %d{ISO8601} %-5p [%c{1}] %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
"""

Record = tuple[str, bytes | None, bytes]
Placement = tuple[str, int, int]


def _progress(message: str) -> None:
    print(f"[java-producer] {message}", file=sys.stderr)


def _javac(java: Path) -> Path:
    """``javac`` beside ``java`` (also beside the real file of a symlinked ``java``), else the
    one on PATH."""
    for candidate in (java.parent / "javac", java.resolve().parent / "javac"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("javac")
    if on_path:
        return Path(on_path)
    raise RuntimeProblem(
        f"{PURPOSE} is compiled with javac, which is not installed beside {java} nor on PATH: "
        f"install a JDK {KAFKA_MIN_JAVA}+ (`apt-get install openjdk-{KAFKA_MIN_JAVA}-jdk-headless`)"
    )


def _classes_dir(root: Path, key: str) -> Path:
    return root / f"java-producer-{key}"


def _compiled(classes: Path) -> bool:
    return (classes / f"{MAIN_CLASS}.class").is_file() and (classes / "log4j2.properties").is_file()


def java_producer_classes(tmp_dir: Path) -> Path:
    """The directory holding the compiled ``JavaProducer`` (and its ``log4j2.properties``).

    Compiled once per source hash and Kafka version into the hallpass cache; the build happens
    in a private directory that is renamed into place, so concurrent test runs never see a
    half-written one. ``tmp_dir`` is used instead of the cache when the cache is not writable.
    """
    classpath, version = kafka_classpath(os.environ, _progress)
    key = hashlib.sha256(SOURCE.read_bytes() + f"\0kafka {version}\0".encode()).hexdigest()[:16]
    root = cache_dir(os.environ)
    for candidate in (root, tmp_dir):
        if _compiled(_classes_dir(candidate, key)):
            return _classes_dir(candidate, key)
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".java-producer-", dir=root))
    except OSError:
        root = tmp_dir
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".java-producer-", dir=root))
    target = _classes_dir(root, key)
    try:
        java = find_java(os.environ, KAFKA_MIN_JAVA, PURPOSE)
        result = subprocess.run(
            [
                str(_javac(java)),
                "--release",
                str(KAFKA_MIN_JAVA),
                "-encoding",
                "UTF-8",
                "-cp",
                classpath,
                "-d",
                str(staging),
                str(SOURCE),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeProblem(
                f"javac could not compile {SOURCE} against Kafka {version} ({classpath}):\n"
                + (result.stdout + result.stderr).strip()
            )
        (staging / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        try:
            staging.rename(target)
        except OSError:  # another run put its copy there first: same source, same classes
            if not _compiled(target):
                raise
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _encode(records: Sequence[Record]) -> str:
    lines: list[str] = []
    for topic, key, value in records:
        if not topic or any(c in topic for c in "\t\r\n"):
            raise ValueError(f"not a topic name: {topic!r}")
        key_field = "" if key is None else base64.b64encode(key).decode("ascii")
        lines.append(f"{topic}\t{key_field}\t{base64.b64encode(value).decode('ascii')}\n")
    return "".join(lines)


def _parse(stdout: str, records: Sequence[Record]) -> list[Placement]:
    placements: list[Placement] = []
    for line in stdout.splitlines():
        topic, partition, offset = line.split("\t")
        placements.append((topic, int(partition), int(offset)))
    if len(placements) != len(records) or any(
        placed[0] != record[0] for placed, record in zip(placements, records, strict=True)
    ):
        raise RuntimeError(
            f"{PURPOSE} reported {len(placements)} placements for {len(records)} records, "
            f"or in another order:\n{stdout[-2000:]}"
        )
    return placements


def java_produce(
    conn: Connection,
    records: Sequence[Record],
    properties: Path | None = None,
) -> list[Placement]:
    """Produce ``records`` (topic, key or None, value) with Java's ``KafkaProducer`` and its
    default partitioner (acks=all, idempotent); return (topic, partition, offset) of each, in
    order.

    ``properties`` is a file of extra Java client settings (``security.protocol``,
    ``sasl.jaas.config``, ``ssl.truststore.*``): a connection with client security settings
    needs one, since those are librdkafka settings and the Java client names its own.
    """
    if conn.client_properties and properties is None:
        raise ValueError(
            "this connection authenticates with librdkafka client settings; pass the Java "
            "client's equivalent as a properties file (properties=...)"
        )
    if not records:
        return []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hallpass-javaprod-")))
        classes = java_producer_classes(tmp)
        classpath, _ = kafka_classpath(os.environ, _progress)
        java = find_java(os.environ, KAFKA_MIN_JAVA, PURPOSE)
        argv = [
            str(java),
            f"-Dlog4j2.configurationFile={classes / 'log4j2.properties'}",
            "-cp",
            f"{classes}{os.pathsep}{classpath}",
            MAIN_CLASS,
            conn.bootstrap_servers,
        ]
        if properties is not None:
            argv.append(str(properties))
        result = subprocess.run(
            argv,
            input=_encode(records),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"{PURPOSE} failed (exit {result.returncode}): "
            + (result.stderr.strip().splitlines() or ["no message"])[-1]
        )
    return _parse(result.stdout, records)
