"""``hallpass lag`` output: the table a person reads, the JSON a script reads, and the
command's answers to a bad port and a cluster that does not answer."""

from __future__ import annotations

import json

from click.testing import CliRunner

from streams.cli import main
from streams.lag.model import GroupLag, LagReport, PartitionLag, Status
from streams.lag.render import COLUMNS, report_json, report_table

TOPIC = "partner.learnwell.students"

REPORT = LagReport(
    at=1_000.0,
    samples=1,
    groups=(
        GroupLag(
            group="learnwell-v",
            state="EMPTY",
            members=0,
            status=Status.STOP,
            partner="learnwell",
            partitions=(
                PartitionLag(TOPIC, 0, "learnwell", 40, 40, 0, 0.0, Status.OK),
                PartitionLag(TOPIC, 1, "learnwell", 20, 1050, 1030, 612.34, Status.STOP),
            ),
        ),
        GroupLag(
            group="hallpass-processor",
            state="STABLE",
            members=1,
            status=Status.OK,
            partitions=(
                PartitionLag(
                    "sis.student.changes", 2, None, None, 7, None, None, Status.OK, consumer="m-1"
                ),
            ),
        ),
        GroupLag(
            group="gone",
            state="DEAD",
            members=0,
            status=Status.ERR,
            partitions=(),
            error="no such consumer group",
        ),
    ),
)


def test_table_has_aligned_columns_and_a_row_per_partition() -> None:
    lines = report_table(REPORT).splitlines()
    assert lines[0].split() == list(COLUMNS)
    rows = [line.split() for line in lines[1:5]]
    assert rows == [
        ["learnwell-v", "STOP", "learnwell", TOPIC, "0", "40", "40", "0", "0.0"],
        ["learnwell-v", "STOP", "learnwell", TOPIC, "1", "20", "1050", "1030", "612.3"],
        ["hallpass-processor", "OK", "-", "sis.student.changes", "2", "-", "7", "-", "-"],
        ["gone", "ERR", "-", "-", "-", "-", "-", "-", "-"],
    ]
    assert lines[5] == "gone: no such consumer group"
    # text columns start where their header starts, numbers end where their header ends
    header = lines[0]
    for line in lines[1:5]:
        assert line[header.index("TOPIC") :].split()[0] in (TOPIC, "sis.student.changes", "-")
        end = header.index("LOG-END-OFFSET") + len("LOG-END-OFFSET")
        assert line[end - 1] != " " and line[end] == " "


def test_json_carries_every_figure() -> None:
    data = json.loads(json.dumps(report_json(REPORT)))
    learnwell, processor, gone = data["groups"]
    assert learnwell == {
        "group": "learnwell-v",
        "partner": "learnwell",
        "status": "STOP",
        "state": "EMPTY",
        "members": 0,
        "lag": 1030,
        "lag_seconds": 612.34,
        "error": None,
        "partitions": [
            {
                "topic": TOPIC,
                "partition": 0,
                "partner": "learnwell",
                "committed_offset": 40,
                "log_end_offset": 40,
                "lag": 0,
                "lag_seconds": 0.0,
                "status": "OK",
                "consumer_id": None,
            },
            {
                "topic": TOPIC,
                "partition": 1,
                "partner": "learnwell",
                "committed_offset": 20,
                "log_end_offset": 1050,
                "lag": 1030,
                "lag_seconds": 612.34,
                "status": "STOP",
                "consumer_id": None,
            },
        ],
    }
    assert processor["partitions"][0]["committed_offset"] is None
    assert processor["partitions"][0]["consumer_id"] == "m-1"
    assert processor["lag_seconds"] is None
    assert gone["status"] == "ERR" and gone["error"] == "no such consumer group"
    assert data["at"] == 1_000.0 and data["samples"] == 1


def test_empty_report() -> None:
    assert report_table(LagReport(at=0.0, samples=1, groups=())) == "no consumer groups"


ENV = {
    "HALLPASS_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "HALLPASS_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
}


def test_lag_says_when_kafka_cannot_be_reached() -> None:
    result = CliRunner().invoke(main, ["lag", "--timeout", "0.5"], env=ENV)
    assert result.exit_code == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in result.output


def test_exporter_needs_a_port() -> None:
    result = CliRunner().invoke(main, ["lag-exporter", "--metrics-port", "0"], env=ENV)
    assert result.exit_code == 2
    assert "give --metrics-port a port" in result.output
