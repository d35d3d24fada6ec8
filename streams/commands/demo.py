"""``hallpass demo``: the main job of `make demo`."""

from __future__ import annotations

import json
import uuid

import click

from streams.commands.context import Context, pass_context, progress
from streams.roundtrip import avro_roundtrip


def register(group: click.Group) -> None:
    @group.command()
    @pass_context
    def demo(ctx: Context) -> None:
        """Run the demo on the running bus (start it first with `hallpass up`).

        Publishes an Avro record through the schema registry, reads it back and prints it.
        """
        conn = ctx.connection()
        progress(f"round trip through Kafka at {conn.bootstrap_servers} and the registry at "
                 f"{conn.schema_registry_url}")
        record = {"probe_id": str(uuid.uuid4()), "message": "hello from hallpass"}
        result = avro_roundtrip(conn, "hallpass.demo", record)
        click.echo(json.dumps(result.record, indent=2))
        click.echo(f"schema id {result.schema_id}, offset {result.offset}: read back equal")
