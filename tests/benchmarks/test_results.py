"""The benchmark's bookkeeping (pure, no Kafka, no timing): figures, ratios within one run,
merging sections into bench-results.json, the targets."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.results import add_ratios, summary, table, targets, write_results


def test_a_figure_is_the_median_of_its_repetitions_with_min_and_max() -> None:
    figure = summary([3.0, 1.0, 2.0])
    assert (figure["median"], figure["min"], figure["max"]) == (2.0, 1.0, 3.0)


def test_every_headline_figure_gets_its_ratio_to_the_baseline_of_the_same_run() -> None:
    run = add_ratios(
        {
            "relay": {"events_per_s": summary([10_000.0])},
            "codec": {"events_per_s": summary([8_000.0])},
            "processor": {"3": {"events_per_s": summary([4_000.0])}},
            "publisher": {},
            "workers": {
                "1": {"events_per_s": summary([100.0]), "rss_bytes": summary([1e8])},
                "2": {"events_per_s": summary([150.0])},
            },
            "metrics": {
                "with": {"events_per_s": summary([90.0])},
                "without": {"events_per_s": summary([100.0])},
            },
            "latency": {
                "p50_s": summary([0.1]),
                "p99_s": summary([0.4]),
                "broker_p50_s": summary([0.01]),
                "broker_p99_s": summary([0.1]),
            },
            "scale": {
                "1000": {
                    "events_per_s": summary([2_000.0]),
                    "rss_bytes": summary([2e8]),
                    "restore_s": summary([3.0]),
                    "changelog_read_s": summary([1.0]),
                }
            },
        }
    )
    assert run["processor"]["3"]["ratio_to_relay"] == 0.4
    assert run["processor"]["3"]["ratio_to_codec"] == 0.5
    assert run["workers"]["ratio"] == 1.5
    assert run["metrics"]["ratio"] == 0.9
    assert run["latency"]["ratio_to_broker"] == {"p50": 10.0, "p99": 4.0}
    scale = run["scale"]["1000"]
    assert (scale["ratio_to_processor_3"], scale["restore_ratio_to_read"]) == (0.5, 3.0)
    assert (scale["rss_ratio_to_empty"], scale["rss_bytes_per_student"]) == (2.0, 1e5)


def test_no_ratio_without_its_baseline_in_the_run() -> None:
    run = add_ratios({"processor": {"3": {"events_per_s": summary([4_000.0])}}})
    assert "ratio_to_relay" not in run["processor"]["3"]
    assert "ratio_to_codec" not in run["processor"]["3"]


def test_targets_say_met_not_met_or_not_measured() -> None:
    found = {
        t["path"]: t["met"]
        for t in targets(
            {
                "processor": {
                    "3": {"events_per_s": summary([12_000.0]), "ratio_to_relay": 0.4},
                    "10": {"events_per_s": summary([7_000.0])},
                },
                "scale": {"1000000": {"rss_bytes": summary([600.0 * 2**20])}},
            }
        )
    }
    assert found["processor.3.events_per_s"] is True
    assert found["processor.3.ratio_to_relay"] is False
    assert found["processor.10.events_per_s"] is True
    assert found["scale.1000000.rss_bytes"] is False
    assert found["latency.p99_s"] is None


def test_a_partial_run_replaces_its_sections_and_keeps_the_others(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    write_results(
        out,
        {"relay": {"events_per_s": summary([1.0])}, "codec": {"events_per_s": summary([2.0])}},
        {"run": "a"},
        fresh=True,
    )
    write_results(out, {"codec": {"events_per_s": summary([3.0])}}, {"run": "b"}, fresh=False)
    saved = json.loads(out.read_text())
    assert saved["relay"]["events_per_s"]["median"] == 1.0
    assert saved["codec"]["events_per_s"]["median"] == 3.0
    assert saved["meta"]["sections"] == {"relay": "a", "codec": "b"}
    assert "relay (run a)" in table(saved)


def test_a_full_run_replaces_the_file(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    write_results(out, {"relay": {"events_per_s": summary([1.0])}}, {"run": "a"}, fresh=True)
    write_results(out, {"codec": {"events_per_s": summary([2.0])}}, {"run": "b"}, fresh=True)
    assert "relay" not in json.loads(out.read_text())
