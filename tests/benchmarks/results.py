"""The figures of a benchmark run: medians with min and max, ratios to baselines measured in
the same run, the issue's targets, the printed table and ``bench-results.json``.

Pure: no Kafka. A figure is ``{"median": m, "min": lo, "max": hi, "values": [...]}``; a ratio
is the median of the figure over the median of its baseline, given only when both were
measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS_FILE = REPO / "bench-results.json"
GIB = 1024**3

Figure = dict[str, Any]


def summary(values: Sequence[float]) -> Figure:
    """Median, min and max of the repetitions (and the values themselves)."""
    if not values:
        raise ValueError("a figure needs at least one repetition")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": [round(v, 6) for v in values],
    }


def median(figure: Any) -> float | None:
    """The median of a figure (a plain number counts as its own median); None if absent."""
    if isinstance(figure, Mapping):
        value = figure.get("median")
        return float(value) if isinstance(value, int | float) else None
    if isinstance(figure, int | float) and not isinstance(figure, bool):
        return float(figure)
    return None


def ratio(figure: Any, baseline: Any) -> float | None:
    """median(figure) / median(baseline); None when either is missing or the baseline is 0."""
    top, bottom = median(figure), median(baseline)
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def lookup(results: Mapping[str, Any], path: str) -> Any:
    """``results["a"]["b"]...`` for the dotted ``path``; None if any step is missing."""
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def write_results(
    path: Path, sections: Mapping[str, Any], meta: Mapping[str, Any], fresh: bool
) -> dict[str, Any]:
    """Write ``sections`` to ``path`` (JSON). ``fresh``: replace the file; else replace only
    these sections in what is there and keep the rest; ``meta.sections`` names the run that
    measured each section (ratios are only ever computed within one run)."""
    existing: dict[str, Any] = {}
    if not fresh and path.exists():
        try:
            loaded = json.loads(path.read_text())
            existing = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            existing = {}
    stamps = dict(lookup(existing, "meta.sections") or {})
    for name, value in sections.items():
        if isinstance(value, Mapping) and name not in ("machine", "targets"):
            stamps[name] = meta.get("run")
    merged = {**existing, **sections}
    merged["targets"] = targets(merged)  # absolute thresholds: fine across runs
    merged["meta"] = {**dict(meta), "sections": stamps}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return merged


class Progress:
    """Timestamped progress lines on stderr (the results go to stdout)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()

    def __call__(self, message: str) -> None:
        print(f"[{self._clock() - self._start:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    label: str
    path: str  #: dotted path of the figure in the results
    unit: str  #: "events/s", "s" or "bytes"
    ratio_path: str | None = None  #: dotted path of its ratio, if any
    ratio_label: str = ""


def _rows(results: Mapping[str, Any]) -> list[Row]:
    rows = [
        Row("relay, transactions on (I/O baseline)", "relay.events_per_s", "events/s"),
        Row(
            "relay, transactions off",
            "relay_no_tx.events_per_s",
            "events/s",
            "relay_no_tx.ratio_to_relay",
            "of relay",
        ),
        Row("codec: decode + encode outputs (CPU baseline)", "codec.events_per_s", "events/s"),
        Row(
            "handler in memory, 3 partners",
            "inmemory_handler_3.events_per_s",
            "events/s",
            "inmemory_handler_3.ratio_to_codec",
            "of codec",
        ),
    ]
    for partners in sorted(lookup(results, "processor") or {}, key=int):
        rows.append(
            Row(
                f"processor, {partners} partner(s), exactly once",
                f"processor.{partners}.events_per_s",
                "events/s",
                f"processor.{partners}.ratio_to_codec",
                "of codec",
            )
        )
        rows.append(Row("", f"processor.{partners}.ratio_to_relay", "ratio"))
    for name in ("simulator", "oneroster"):
        rows.append(
            Row(
                f"publisher: raw produce of the {name} messages",
                f"publisher.{name}.raw_events_per_s",
                "events/s",
            )
        )
        rows.append(
            Row(
                f"publisher: {name}",
                f"publisher.{name}.events_per_s",
                "events/s",
                f"publisher.{name}.ratio_to_raw",
                "of raw",
            )
        )
    rows += [
        Row("metrics off, 3 partners", "metrics.without.events_per_s", "events/s"),
        Row(
            "metrics on (Prometheus registry)",
            "metrics.with.events_per_s",
            "events/s",
            "metrics.ratio",
            "of off",
        ),
        Row("1 worker process (hallpass process)", "workers.1.events_per_s", "events/s"),
        Row(
            "2 worker processes, one group",
            "workers.2.events_per_s",
            "events/s",
            "workers.ratio",
            "of 1 worker",
        ),
        Row(
            "latency p50, 1,000 events/s",
            "latency.p50_s",
            "s",
            "latency.ratio_to_broker.p50",
            "of broker",
        ),
        Row("latency p99", "latency.p99_s", "s", "latency.ratio_to_broker.p99", "of broker"),
        Row("latency max", "latency.max_s", "s"),
        Row("broker alone p99 (producer to consumer)", "latency.broker_p99_s", "s"),
    ]
    for n in sorted(lookup(results, "scale") or {}, key=int):
        rows += [
            Row(
                f"scale {int(n):,} students: processor",
                f"scale.{n}.events_per_s",
                "events/s",
                f"scale.{n}.ratio_to_processor_3",
                "of empty state",
            ),
            Row(
                "  resident memory, loading the state",
                f"scale.{n}.rss_bytes",
                "bytes",
                f"scale.{n}.rss_ratio_to_empty",
                "of empty state",
            ),
            Row("  resident memory after restore", f"scale.{n}.rss_after_restore_bytes", "bytes"),
            Row(
                "  restore",
                f"scale.{n}.restore_s",
                "s",
                f"scale.{n}.restore_ratio_to_read",
                "of reading it",
            ),
        ]
    return rows


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "events/s":
        return f"{value:,.0f}"
    if unit == "bytes":
        return f"{value / 2**20:,.0f} MiB"
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(results: Mapping[str, Any]) -> str:
    """The headline figures as text: median, min, max and the ratio to their baseline."""
    meta = results.get("meta") or {}
    stale = [
        f"{name} (run {run})"
        for name, run in (meta.get("sections") or {}).items()
        if run != meta.get("run") and name != "errors"
    ]
    lines = [
        f"run {meta.get('run', '?')}"
        + (f"; from earlier runs: {', '.join(stale)}" if stale else ""),
        f"{'figure':<48} {'median':>12} {'min':>12} {'max':>12}  ratio",
        "-" * 100,
    ]
    for row in _rows(results):
        figure = lookup(results, row.path)
        if figure is None:
            continue
        if row.unit == "ratio":  # a second ratio of the row above
            value = median(figure)
            if value is not None:
                lines.append(f"{'':<48} {'':>12} {'':>12} {'':>12}  {value:.2f} of relay")
            continue
        low = figure.get("min") if isinstance(figure, Mapping) else None
        high = figure.get("max") if isinstance(figure, Mapping) else None
        text = ""
        if row.ratio_path is not None:
            r = median(lookup(results, row.ratio_path))
            text = f"{r:.2f} {row.ratio_label}" if r is not None else ""
        lines.append(
            f"{row.label:<48} {_fmt(median(figure), row.unit):>12} "
            f"{_fmt(low, row.unit):>12} {_fmt(high, row.unit):>12}  {text}"
        )
    checks = lookup(results, "targets") or []
    if checks:
        lines += ["", "targets of the issue:"]
        for check in checks:
            verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
            shown = "" if check["value"] is None else f" ({check['value']:,.3f})"
            lines.append(f"  {check['target']:<58} {verdict}{shown}")
    return "\n".join(lines)


# --- the targets ----------------------------------------------------------------------------


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each met, not met or not measured (None) in these results."""

    def check(target: str, path: str, ok: Callable[[float], bool]) -> dict[str, Any]:
        value = median(lookup(results, path))
        return {
            "target": target,
            "path": path,
            "value": value,
            "met": None if value is None else ok(value),
        }

    million = "scale.1000000"
    three = median(lookup(results, "processor.3.events_per_s"))
    return [
        check(
            "processor, 3 partners: >= 10,000 events/s",
            "processor.3.events_per_s",
            lambda v: v >= 10_000,
        ),
        check(
            "processor, 3 partners: >= 0.5 of the relay",
            "processor.3.ratio_to_relay",
            lambda v: v >= 0.5,
        ),
        check(
            "processor, 10 partners: >= 0.5 of 3 partners",
            "processor.10.events_per_s",
            lambda v: three is not None and v >= 0.5 * three,
        ),
        check("two workers: >= 1.8x one", "workers.ratio", lambda v: v >= 1.8),
        check("latency p99 <= 0.2 s at 1,000 events/s", "latency.p99_s", lambda v: v <= 0.2),
        check(
            "1,000,000 students: resident memory <= 512 MiB",
            f"{million}.rss_bytes",
            lambda v: v <= 512 * 2**20,
        ),
        check("1,000,000 students: restore <= 10 s", f"{million}.restore_s", lambda v: v <= 10),
        check(
            "publisher: simulator >= 0.3 of raw",
            "publisher.simulator.ratio_to_raw",
            lambda v: v >= 0.3,
        ),
        check(
            "publisher: OneRoster >= 0.2 of raw",
            "publisher.oneroster.ratio_to_raw",
            lambda v: v >= 0.2,
        ),
    ]


# --- ratios within one run -------------------------------------------------------------------


def _set(node: Any, key: str, value: float | None) -> None:
    if isinstance(node, dict) and value is not None:
        node[key] = value


def add_ratios(run: dict[str, Any]) -> dict[str, Any]:
    """Give every headline figure of ``run`` (the sections of ONE run) its ratio to the
    baseline measured in that run; also the targets. Returns ``run``."""
    relay, codec = lookup(run, "relay.events_per_s"), lookup(run, "codec.events_per_s")
    _set(
        run.get("relay_no_tx"),
        "ratio_to_relay",
        ratio(lookup(run, "relay_no_tx.events_per_s"), relay),
    )
    _set(
        run.get("inmemory_handler_3"),
        "ratio_to_codec",
        ratio(lookup(run, "inmemory_handler_3.events_per_s"), codec),
    )
    for entry in (lookup(run, "processor") or {}).values():
        _set(entry, "ratio_to_relay", ratio(entry.get("events_per_s"), relay))
        _set(entry, "ratio_to_codec", ratio(entry.get("events_per_s"), codec))
    _set(
        run.get("metrics"),
        "ratio",
        ratio(
            lookup(run, "metrics.with.events_per_s"), lookup(run, "metrics.without.events_per_s")
        ),
    )
    _set(
        run.get("workers"),
        "ratio",
        ratio(lookup(run, "workers.2.events_per_s"), lookup(run, "workers.1.events_per_s")),
    )
    latency = run.get("latency")
    if isinstance(latency, dict):
        to_broker = {
            q: ratio(latency.get(f"{q}_s"), latency.get(f"broker_{q}_s")) for q in ("p50", "p99")
        }
        latency["ratio_to_broker"] = {q: r for q, r in to_broker.items() if r is not None}
    empty_rss = median(lookup(run, "workers.1.rss_bytes"))
    for n, entry in (lookup(run, "scale") or {}).items():
        _set(
            entry,
            "ratio_to_processor_3",
            ratio(entry.get("events_per_s"), lookup(run, "processor.3.events_per_s")),
        )
        _set(
            entry,
            "restore_ratio_to_read",
            ratio(entry.get("restore_s"), entry.get("changelog_read_s")),
        )
        rss = median(entry.get("rss_bytes"))
        if empty_rss and rss is not None:
            entry["rss_ratio_to_empty"] = rss / empty_rss
            entry["rss_bytes_per_student"] = (rss - empty_rss) / int(n)
    run["targets"] = targets(run)
    return run
