"""Java detection: a missing or too old Java is explained, a new enough one is chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.local import artifacts
from streams.local.artifacts import find_java
from streams.local.errors import RuntimeProblem


def _fake_java(tmp_path: Path, name: str, version: str) -> Path:
    java = tmp_path / name / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(0o755)
    return java


def test_too_old_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fake_java(tmp_path, "jdk11", "11.0.2")
    monkeypatch.setattr(artifacts, "java_candidates", lambda env: [old])
    with pytest.raises(RuntimeProblem) as problem:
        find_java({}, 17, "Apache Kafka")
    message = str(problem.value)
    assert "needs Java 17 or newer" in message and "(11)" in message
    assert "HALLPASS_JAVA_HOME" in message


def test_missing_java_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "java_candidates", lambda env: [])
    with pytest.raises(RuntimeProblem, match="Java found: none found"):
        find_java({}, 21, "Apicurio Registry")


def test_first_new_enough_java_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fake_java(tmp_path, "jdk8", "1.8.0_292")
    new = _fake_java(tmp_path, "jdk21", "21.0.4")
    monkeypatch.setattr(artifacts, "java_candidates", lambda env: [old, new])
    assert find_java({}, 17, "Kafka") == new
    assert artifacts.java_major(old) == 8
