"""An unreachable broker or registry is one bounded wait and one line that names the address
and the setting to check (closed ports on loopback: no broker needed)."""

from __future__ import annotations

import socket
import time

import pytest

from streams.kafka.reachability import Unreachable, check_broker, check_registry


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_broker_is_one_line_within_the_timeout() -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(Unreachable) as refused:
        check_broker({"bootstrap.servers": f"127.0.0.1:{port}"}, timeout_s=2.0)
    assert time.monotonic() - started < 10
    said = str(refused.value)
    assert f"127.0.0.1:{port}" in said and "HALLPASS_BOOTSTRAP_SERVERS" in said
    assert "\n" not in said


def test_an_unreachable_registry_is_one_line_naming_its_setting() -> None:
    url = f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7"
    started = time.monotonic()
    with pytest.raises(Unreachable) as refused:
        check_registry({"url": url}, timeout_s=2.0)
    assert time.monotonic() - started < 10
    said = str(refused.value)
    assert url in said and "HALLPASS_SCHEMA_REGISTRY_URL" in said and "\n" not in said
