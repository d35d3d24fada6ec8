"""A lag report as an aligned table for people, or as JSON-ready data for machines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.lag.model import GroupLag, LagReport, PartitionLag

COLUMNS = (
    "GROUP",
    "STATUS",
    "PARTNER",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "LAG-SECONDS",
)
#: columns aligned to the right (numbers)
_NUMERIC = frozenset({"PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-SECONDS"})


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _rows(group: GroupLag) -> list[tuple[str, ...]]:
    head = (group.group, group.status.value, _text(group.partner))
    if not group.partitions:
        return [(*head, "-", "-", "-", "-", "-", "-")]
    return [
        (
            *head,
            p.topic,
            str(p.partition),
            _text(p.committed),
            _text(p.log_end),
            _text(p.lag),
            _text(p.lag_seconds),
        )
        for p in group.partitions
    ]


def align(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(w) if name in _NUMERIC else cell.ljust(w)
            for cell, w, name in zip(row, widths, header, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def report_table(report: LagReport) -> str:
    """One row per group and partition, then one line per group that has an error."""
    if not report.groups:
        return "no consumer groups"
    rows = [row for group in report.groups for row in _rows(group)]
    lines = align(rows, COLUMNS)
    lines += [f"{g.group}: {g.error}" for g in report.groups if g.error]
    return "\n".join(lines)


def _partition_json(p: PartitionLag) -> dict[str, Any]:
    return {
        "topic": p.topic,
        "partition": p.partition,
        "partner": p.partner,
        "committed_offset": p.committed,
        "log_end_offset": p.log_end,
        "lag": p.lag,
        "lag_seconds": _seconds(p.lag_seconds),
        "status": p.status.value,
        "consumer_id": p.consumer,
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report_json(report: LagReport) -> dict[str, Any]:
    """The report as JSON-ready data (``lag_seconds`` null: unknown)."""
    return {
        "at": report.at,
        "samples": report.samples,
        "groups": [
            {
                "group": g.group,
                "partner": g.partner,
                "status": g.status.value,
                "state": g.state,
                "members": g.members,
                "lag": g.lag,
                "lag_seconds": _seconds(g.lag_seconds),
                "error": g.error,
                "partitions": [_partition_json(p) for p in g.partitions],
            }
            for g in report.groups
        ],
    }
