"""The folders tell the design: the pure policy core (and the topic names it uses) imports no
Kafka client, no HTTP client and no I/O module of hallpass, directly or through another
module of the repository."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PURE = sorted(
    [
        *(REPO / "streams" / "policy").glob("*.py"),
        REPO / "streams" / "kafka" / "names.py",
        *(
            p
            for p in (REPO / "streams" / "processor").glob("*.py")
            if p.stem in ("clock", "decider", "routing", "timers", "messages")
        ),
    ]
)
#: modules that do I/O (or third-party clients that do)
IO = (
    "confluent_kafka",
    "httpx",
    "requests",
    "socket",
    "subprocess",
    "sqlite3",
    "streams.kafka.admin",
    "streams.kafka.wire",
    "streams.kafka.read_to_end",
    "streams.kafka.roundtrip",
    "streams.local",
    "streams.config",
    "streams.security",
    "streams.commands",
    "streams.cli",
    "streams.metrics",
    "connectors",
)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def closure(path: Path) -> dict[str, str]:
    """Every module ``path`` imports, directly or through repository modules: name -> the
    repository module that imports it."""
    seen: dict[str, str] = {}
    todo = [path]
    while todo:
        current = todo.pop()
        for name in imports_of(current):
            if name in seen:
                continue
            seen[name] = module_name(current)
            for candidate in (
                (REPO / Path(*name.split("."))).with_suffix(".py"),
                REPO / Path(*name.split(".")) / "__init__.py",
            ):
                if candidate.is_file():
                    todo.append(candidate)
    return seen


@pytest.mark.parametrize("path", PURE, ids=module_name)
def test_pure_modules_do_no_io(path: Path) -> None:
    bad = {
        name: via
        for name, via in closure(path).items()
        if any(name == io or name.startswith(f"{io}.") for io in IO)
    }
    assert not bad, f"{module_name(path)} reaches I/O: " + ", ".join(
        f"{name} (imported by {via})" for name, via in sorted(bad.items())
    )


def test_the_pure_core_is_found() -> None:
    assert {module_name(p) for p in PURE} >= {
        "streams.policy.catalog",
        "streams.policy.contracts",
        "streams.policy.consent",
        "streams.policy.views",
        "streams.policy.decision",
        "streams.policy.retention",
        "streams.kafka.names",
        "streams.processor.decider",
    }


def test_the_check_sees_io_through_other_modules() -> None:
    reached = closure(REPO / "streams" / "kafka" / "admin.py")
    assert "confluent_kafka.admin" in reached and "streams.config" in reached
    assert "streams.security.client_settings" in reached  # through streams.config
