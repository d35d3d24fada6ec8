"""``hallpass dlq list|show|replay``: the records the processor could not decide."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from streams.commands.context import Context, pass_context
from streams.processor.dlq_tool import (
    DeadLetter,
    Selection,
    find,
    read_dead_letters,
    read_replayed,
    render_bytes,
    render_key,
    replay,
    stripped,
)


@click.group()
def dlq() -> None:
    """The records the processor dead-lettered (sis.student.changes.dlq, under the topic
    prefix): list them with reason and origin, show one, replay a selection to its input
    topic once the cause is fixed (exactly once: a second replay of it writes nothing)."""


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _row(letter: DeadLetter, replayed: bool) -> dict[str, Any]:
    return {
        "position": letter.position,
        "time": _when(letter.timestamp_ms),
        "origin_topic": letter.origin_topic,
        "origin_partition": letter.origin_partition,
        "origin_offset": letter.origin_offset,
        "key": render_key(letter.key),
        "reason": letter.reason,
        "replayed": replayed,
    }


@dlq.command("list")
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    help="Only dead letters of this reason kind or prefix (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def list_(ctx: Context, reasons: tuple[str, ...], as_json: bool) -> None:
    """Every dead letter: its DLQ position (PARTITION:OFFSET), time, origin (input topic,
    partition, offset), key and reason, and whether it was replayed."""
    conn, topics = ctx.connection(registry=False), ctx.topics()
    letters = read_dead_letters(conn, topics)
    if reasons:
        selection = Selection(reasons=reasons)
        letters = [d for d in letters if selection.matches(d)]
    done = read_replayed(conn, topics)
    rows = [_row(d, d.position in done) for d in letters]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no dead letters in {topics.changes_dlq}")
        return
    for row in rows:
        origin = f"{row['origin_topic']}[{row['origin_partition']}]@{row['origin_offset']}"
        flag = " (replayed)" if row["replayed"] else ""
        click.echo(
            f"{row['position']:<8} {row['time']}  {origin:<40} {row['key']:<20} "
            f"{row['reason']}{flag}"
        )
    click.echo(f"{len(rows)} dead letters in {topics.changes_dlq}", err=True)


@dlq.command()
@click.argument("position")
@pass_context
def show(ctx: Context, position: str) -> None:
    """One dead letter (POSITION: PARTITION:OFFSET as `list` shows it): reason, origin,
    key, headers and the record decoded, never-share values stripped. An undecodable
    record is shown as its length and first bytes in hex, never raw."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from streams.kafka.wire import WireDecoder, WireFormatError
    from streams.policy.catalog import field_catalog, load_schema, never_share_paths

    conn, topics = ctx.connection(), ctx.topics()
    letter = find(read_dead_letters(conn, topics), position)
    replayed = letter.position in read_replayed(conn, topics)
    click.echo(f"position: {letter.position} of {topics.changes_dlq}")
    click.echo(f"time:     {_when(letter.timestamp_ms)}")
    click.echo(f"reason:   {letter.reason}")
    click.echo(f"origin:   {letter.origin}")
    click.echo(f"key:      {render_key(letter.key)}")
    click.echo(f"replayed: {'yes' if replayed else 'no'}")
    if letter.value is None:
        click.echo("value:    (none kept)")
        return
    try:
        record = WireDecoder(SchemaRegistryClient(conn.registry_config())).decode(letter.value)
    except (WireFormatError, ValueError, EOFError, IndexError, TypeError):
        click.echo(f"value:    undecodable, {render_bytes(letter.value)}")
        return
    paths = never_share_paths(field_catalog(load_schema("student_record_changed")))
    click.echo("value:")
    click.echo(json.dumps(stripped(record, sorted(paths)), indent=2, default=str))


@dlq.command("replay")
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    help="Dead letters of this reason kind (undecodable, invalid, future_dated, ...) "
    "or reason prefix (repeatable).",
)
@click.option(
    "--origin",
    "origins",
    multiple=True,
    help="Dead letters from TOPIC, TOPIC:PARTITION or TOPIC:PARTITION:FROM[-TO] "
    "(offsets of the input topic; repeatable).",
)
@click.option(
    "--position",
    "positions",
    multiple=True,
    help="The dead letter at this DLQ position PARTITION:OFFSET (repeatable).",
)
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; write nothing.")
@pass_context
def replay_(
    ctx: Context,
    reasons: tuple[str, ...],
    origins: tuple[str, ...],
    positions: tuple[str, ...],
    everything: bool,
    dry_run: bool,
) -> None:
    """Write a selection of dead letters back to their input topics once their cause is
    fixed (criteria combine: each given one must match). Exactly once: the records and a
    marker per dead letter are written in one transaction, and a dead letter with a marker is
    never replayed again. The processor then takes them as new input."""
    selection = Selection(
        reasons=reasons, origins=origins, positions=positions, everything=everything
    )
    conn, topics = ctx.connection(registry=False), ctx.topics()
    if dry_run:
        done = read_replayed(conn, topics)
        chosen = [d for d in read_dead_letters(conn, topics) if selection.matches(d)]
        for letter in chosen:
            state = "already replayed" if letter.position in done else "would replay"
            click.echo(f"{letter.position:<8} {state}: {letter.origin}  {letter.reason}")
        return
    settings = ctx.topic_settings()
    result = replay(
        conn,
        topics,
        selection,
        replication_factor=settings.replication_factor,
        min_insync=settings.min_insync_replicas,
    )
    for letter in result.replayed:
        click.echo(f"{letter.position:<8} replayed to {letter.origin_topic}  ({letter.reason})")
    for letter, why in result.unusable:
        click.echo(f"{letter.position:<8} not replayed: {why}")
    click.echo(
        f"{len(result.replayed)} replayed, {len(result.already)} replayed before, "
        f"{len(result.unusable)} not replayable"
    )
