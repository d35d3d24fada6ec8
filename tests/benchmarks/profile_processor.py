"""Where the processor's time goes, under pyinstrument. Not part of `make test`.

    python -m tests.benchmarks.profile_processor [--students 10000] [--days 3] [--partners 3]
        [--mode handler|kafka] [--out FILE.html] [--top 30] [--tree]

  handler  the processor's handler alone on the simulated data, in memory (decode, policy,
           tables, encode; no Kafka) -- the `inmemory` scenario of bench_processor
  kafka    the whole `run_processor` until idle on the same data on the broker, exactly once
Prints the time per stage (codec, policy and views, consent state, tables, handler, Kafka
I/O), the top frames by own time, optionally the call tree, and writes an HTML profile.
Needs the broker and registry (view schemas are registered per run under a topic prefix,
deleted at the end), e.g. HALLPASS_BOOTSTRAP_SERVERS and HALLPASS_SCHEMA_REGISTRY_URL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from connectors.simulation.stream import simulate
from streams.config import Connection, resolve_connection
from streams.kafka.names import Topics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import load_contracts
from streams.processor.app import (
    apply_contracts,
    build_handler,
    load_partner_secrets,
    run_processor,
)
from tests.benchmarks.bench_publish import SEED
from tests.benchmarks.dataset import (
    PARTITIONS,
    Encoded,
    bench_keys,
    contracts_dir,
    drop_run,
    encode_dataset,
    fake_messages,
    produce,
    run_in_memory,
)
from tests.benchmarks.results import Progress

#: (stage, path fragments): a sample counts for the innermost frame on its stack that matches
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("avro codec (fastavro via streams/kafka/wire.py)", ("streams/kafka/wire.py", "fastavro")),
    (
        "policy and views (streams/policy/decision.py, views.py)",
        ("streams/policy/decision.py", "streams/policy/views.py"),
    ),
    ("consent state (streams/policy/consent.py)", ("streams/policy/consent.py",)),
    ("tables (streams/processor/state.py, orjson)", ("streams/processor/state.py", "orjson")),
    ("handler (streams/processor/handlers.py)", ("streams/processor/handlers.py",)),
    ("schema registry client", ("schema_registry",)),
    (
        "kafka I/O (confluent_kafka, processor/loop.py)",
        ("confluent_kafka", "streams/processor/loop.py", "streams/kafka/read_to_end.py"),
    ),
)
#: consume also waits: for the group to assign, for input, and the idle span that ends a run
#: with until_idle; counted apart from the rest of the Kafka I/O
CONSUME = (
    "kafka consume, including waits (group join, the idle end)",
    ("Consumer.consume", "Consumer.poll"),
)
OTHER = "other"


def stage_of(frame: Frame) -> str | None:
    if frame.function in CONSUME[1]:
        return CONSUME[0]
    path = frame.file_path
    if not path:
        return None
    for stage, fragments in STAGES:
        if any(fragment in path for fragment in fragments):
            return stage
    return None


def _walk(frame: Frame, stage: str) -> Iterator[tuple[Frame, str, float]]:
    """(frame, its stage, its own time) for every real frame under ``frame``."""
    here = stage_of(frame) or stage
    yield frame, here, frame.total_self_time
    for child in frame.children:
        if not child.is_synthetic:
            yield from _walk(child, here)


@dataclass(frozen=True)
class Breakdown:
    total_s: float
    stages: list[tuple[str, float]]  #: stage, seconds; largest first
    frames: list[tuple[str, float]]  #: "function  file:line", own seconds; largest first


def breakdown(root: Frame) -> Breakdown:
    """Own time per stage and per function of a profile's frame tree."""
    stages: dict[str, float] = {}
    frames: dict[str, float] = {}
    for frame, stage, own in _walk(root, OTHER):
        stages[stage] = stages.get(stage, 0.0) + own
        where = f"{frame.function}  {frame.file_path_short or frame.file_path}:{frame.line_no}"
        frames[where] = frames.get(where, 0.0) + own
    return Breakdown(
        root.time,
        sorted(stages.items(), key=lambda kv: -kv[1]),
        sorted(frames.items(), key=lambda kv: -kv[1]),
    )


def render(result: Breakdown, top: int) -> str:
    total = max(result.total_s, 1e-9)
    lines = [
        f"sampled {result.total_s:.2f}s",
        "",
        "time per stage (own time of the innermost frame of each stage):",
    ]
    lines += [
        f"  {seconds / total:6.1%}  {seconds:8.3f}s  {stage}" for stage, seconds in result.stages
    ]
    lines += ["", f"top {top} frames by own time:"]
    lines += [
        f"  {share / total:6.1%}  {share:8.3f}s  {where}" for where, share in result.frames[:top]
    ]
    return "\n".join(lines)


def profile_handler(
    conn: Connection,
    topics: Topics,
    contracts: Path,
    secrets: Path,
    data: Encoded,
    profiler: Profiler,
) -> tuple[float, int]:
    """The handler in memory under the profiler; (events/s, events)."""
    handler = build_handler(conn, contracts, bench_keys(secrets), topics, PARTITIONS)
    messages = fake_messages(topics, data)
    profiler.start()
    try:
        rate, _ = run_in_memory(handler, topics, messages)
    finally:
        profiler.stop()
    return rate, len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=10000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--partners", type=int, default=3)
    parser.add_argument("--mode", choices=("handler", "kafka"), default="handler")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="HTML profile (default: hallpass-profile-<mode>.html in the temporary directory).",
    )
    parser.add_argument("--top", type=int, default=30, help="Frames to list.")
    parser.add_argument("--tree", action="store_true", help="Also print the call tree.")
    parser.add_argument(
        "--interval", type=float, default=0.001, help="Sampling interval in seconds."
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.gettempdir()) / f"hallpass-profile-{args.mode}.html"
    progress = Progress()
    conn = resolve_connection(
        os.environ, Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")).resolve()
    )
    prefix = f"bench.{uuid.uuid4().hex[:6]}.profile."
    topics = Topics(prefix)
    profiler = Profiler(interval=args.interval, async_mode="disabled")
    with tempfile.TemporaryDirectory(prefix="hallpass-profile-") as tmp:
        try:
            progress(
                f"encoding the simulated data ({args.students:,} students, "
                f"{args.days} days); topics under {prefix}*"
            )
            data = encode_dataset(
                conn, list(simulate(args.students, SEED, args.days, districts=2)), f"{prefix}data."
            )
            contracts = contracts_dir(Path(tmp), args.partners)
            secrets = Path(tmp) / "secrets.json"
            catalog = field_catalog(load_schema("student_record_changed"))
            load_partner_secrets(
                secrets, [c.partner for c in load_contracts(contracts, catalog)], lambda _m: None
            )
            apply_contracts(conn, contracts, topics, secrets_file=secrets)
            if args.mode == "handler":
                progress(f"profiling the handler in memory, {args.partners} partner(s)")
                rate, events = profile_handler(conn, topics, contracts, secrets, data, profiler)
            else:
                produce(conn, topics, data)
                progress(f"profiling run_processor, {args.partners} partner(s), exactly once")
                profiler.start()
                try:
                    stats, _ = run_processor(
                        conn,
                        contracts,
                        secrets,
                        until_idle=True,
                        worker=0,
                        note=lambda _m: None,
                        topics=topics,
                    )
                finally:
                    profiler.stop()
                events = stats.consumed
                rate = events / max(stats.last_commit_at - stats.first_batch_at, 1e-9)
        finally:
            progress(f"deleting the topics, subjects and groups {prefix}*")
            drop_run(conn, prefix, progress)
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        raise SystemExit("no samples were taken")
    print(
        f"{args.mode}: {events} events, {rate:,.0f} events/s "
        f"({'while profiled' if args.mode == 'handler' else 'busy, while profiled'})"
    )
    print(render(breakdown(root), args.top))
    if args.tree:
        print(profiler.output_text(unicode=True, color=False, short_mode=True))
    profiler.write_html(out)
    progress(f"wrote {out} ({time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
