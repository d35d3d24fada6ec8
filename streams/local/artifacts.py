"""Artifacts of the local stack: the Maven descriptor ``deploy/local/pom.xml``, Apache
Kafka and Apicurio fetched from Maven Central into a cache outside the repository, and the
Java runtimes that can run them."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from streams.local.errors import Progress, RuntimeProblem

KAFKA_MIN_JAVA = 17
REGISTRY_MIN_JAVA = 21
ENV_CACHE_DIR = "HALLPASS_CACHE_DIR"
ENV_KAFKA_HOME = "KAFKA_HOME"
ENV_JAVA_HOME = "HALLPASS_JAVA_HOME"

# ---------------------------------------------------------------------------------------------
# Descriptor and artifacts


def descriptor_path() -> Path:
    """``deploy/local/pom.xml`` in the repository, or its packaged copy in a wheel."""
    here = Path(__file__).resolve().parents[1]  # streams/
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
    _fetch_once(
        pom,
        libs,
        f"Apache Kafka {version}",
        [
            "-Pkafka",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        progress,
    )
    return f"{libs}/*", version


def _fetch_once(
    pom: Path,
    target: Path,
    what: str,
    maven_args: list[str],
    progress: Progress,
    must_contain: str | None = None,
) -> None:
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
    _fetch_once(
        pom,
        home,
        f"Apicurio Registry {version}",
        [
            "-Pregistry",
            "dependency:unpack-dependencies",
            f"-DoutputDirectory={home}",
            f"-DmarkersDirectory={home}/.markers",
        ],
        progress,
        must_contain="quarkus-run.jar",
    )
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
