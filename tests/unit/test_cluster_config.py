"""The configuration of a local cluster's nodes (`hallpass up --brokers 3`), without starting
it: each node's id, listeners and the 3-voter quorum; replication factor 3 and 2 in sync for
every topic; the count fixed when the data dir is formatted."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.local.broker import BROKER_PROPERTIES, cluster_properties, node_ports
from streams.local.errors import RuntimeProblem
from streams.local.stack import LocalStack, Ports
from streams.security.client_settings import parse_properties

SINGLE = BROKER_PROPERTIES.format(kafka=32300, controller=32301, log_dir="/d/kafka")


def node(number: int) -> dict[str, str]:
    return parse_properties(cluster_properties(SINGLE, number, 3, 32300, 32301))


def test_each_node_has_its_own_id_and_ports_and_all_vote() -> None:
    assert [node_ports(32300, 32301, n) for n in (1, 2, 3)] == [
        (32300, 32301),
        (32302, 32303),
        (32304, 32305),
    ]
    for number, (kafka, controller) in (
        (1, (32300, 32301)),
        (2, (32302, 32303)),
        (3, (32304, 32305)),
    ):
        config = node(number)
        assert config["node.id"] == str(number)
        assert config["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}"
        )
        assert config["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{kafka}"
        assert config["controller.quorum.voters"] == (
            "1@127.0.0.1:32301,2@127.0.0.1:32303,3@127.0.0.1:32305"
        )
        assert config["process.roles"] == "broker,controller"


def test_every_topic_gets_three_replicas_and_two_in_sync() -> None:
    config = node(2)
    assert config["default.replication.factor"] == "3"
    assert config["min.insync.replicas"] == "2"
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["transaction.state.log.replication.factor"] == "3"
    assert config["transaction.state.log.min.isr"] == "2"
    text = cluster_properties(SINGLE, 2, 3, 32300, 32301)
    assert text.count("default.replication.factor=") == 1  # replaced, not appended twice


def test_a_single_node_is_unchanged() -> None:
    assert cluster_properties(SINGLE, 1, 1, 32300, 32301) == SINGLE
    assert parse_properties(SINGLE)["default.replication.factor"] == "1"


def test_ports_that_would_collide_are_refused(tmp_path: Path) -> None:
    stack = LocalStack(
        tmp_path, ports=Ports(kafka=32300, controller=32302, registry=32381), brokers=3
    )
    with pytest.raises(RuntimeProblem, match="would serve both"):
        stack._check_ports(3, [1, 2, 3], registry=True)


@pytest.mark.parametrize("brokers", [2, 10])
def test_a_cluster_needs_three_nodes(tmp_path: Path, brokers: int) -> None:
    with pytest.raises(RuntimeProblem, match="3 to 9"):
        LocalStack(tmp_path, brokers=brokers)._node_count()


def test_the_broker_count_is_fixed_when_formatted(tmp_path: Path) -> None:
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "meta.properties").write_text("cluster.id=x\nnode.id=1\n")
    assert LocalStack(tmp_path).formatted_nodes() == 1
    with pytest.raises(RuntimeProblem, match="formatted for 1 broker: start it with --brokers 1"):
        LocalStack(tmp_path, brokers=3)._node_count()
    for number in (2, 3):
        (tmp_path / f"kafka-{number}").mkdir()
        (tmp_path / f"kafka-{number}" / "meta.properties").write_text("cluster.id=x\n")
    assert LocalStack(tmp_path)._node_count() == 3


def test_secure_stays_single_broker(tmp_path: Path) -> None:
    with pytest.raises(RuntimeProblem, match="--secure runs a single broker"):
        LocalStack(tmp_path, secure=True, brokers=3)._node_count()
