"""``hallpass roundtrip``: publish one Avro record through the registry and read it back."""

from __future__ import annotations

import json
import uuid

import click

from streams.commands.context import Context, pass_context
from streams.kafka.roundtrip import avro_roundtrip


@click.command()
@click.option(
    "--topic",
    default="hallpass.roundtrip",
    show_default=True,
    help="Topic to write the probe record to.",
)
@pass_context
def roundtrip(ctx: Context, topic: str) -> None:
    """Check the bus end to end: produce an Avro record with the registry, consume it back.

    Prints the record as read and the schema id the registry gave it.
    """
    record = {"probe_id": str(uuid.uuid4()), "message": "hello from hallpass"}
    result = avro_roundtrip(ctx.connection(), topic, record)
    click.echo(
        json.dumps(
            {
                "topic": topic,
                "schema_id": result.schema_id,
                "offset": result.offset,
                "record": result.record,
            },
            indent=2,
        )
    )
    if result.record != record:
        raise click.ClickException("the record read back differs from the one produced")
