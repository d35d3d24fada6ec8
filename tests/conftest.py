"""Shared fixtures. Integration tests run against the real local broker and registry.

The ``bus`` fixture starts them once per test session (on test ports, in a temporary data
dir) and stops them at the end; with HALLPASS_BOOTSTRAP_SERVERS and
HALLPASS_SCHEMA_REGISTRY_URL set it uses that cluster instead and starts nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from streams.config import Connection, external_connection
from streams.kafka.names import Topics
from streams.local.stack import LocalStack, Ports

# Speed is measured in `make bench`, never asserted in a test: no per-example time limit
# (a loaded 2-core CI machine would otherwise fail pure properties at random).
settings.register_profile("hallpass", deadline=None)
settings.load_profile("hallpass")

TEST_PORTS = Ports(kafka=29092, controller=29093, registry=28081)


@pytest.fixture(scope="session")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connection]:
    external = external_connection(os.environ)
    if external is not None:
        yield external
        return
    data_dir = tmp_path_factory.mktemp("hallpass-bus")
    stack = LocalStack(data_dir, ports=TEST_PORTS, progress=lambda m: print(f"[bus] {m}"))
    state = stack.up()
    try:
        yield Connection(state.bootstrap_servers, state.schema_registry_url)
    finally:
        stack.down(quiet=True)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Topic / group names unique to one test: ``unique_name("changes")``."""
    test = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]

    def make(kind: str) -> str:
        return f"t.{test}.{kind}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def topics(bus: Connection, request: pytest.FixtureRequest) -> Iterator[Topics]:
    """Topic names under a prefix of this test's own (its topics, subjects and processor
    group), deleted afterwards."""
    from tests.processor_helpers import drop_prefix

    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    topics = Topics(f"t.{module.replace('_', '-')}.{uuid.uuid4().hex[:8]}.")
    yield topics
    drop_prefix(bus, topics.prefix)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
