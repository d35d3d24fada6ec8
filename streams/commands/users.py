"""``hallpass users``: the SCRAM credentials of the broker's principals."""

from __future__ import annotations

from pathlib import Path

import click

from streams.commands.context import Context, pass_context
from streams.security.client_settings import read_secret_file
from streams.security.users import (
    MECHANISM_NAME,
    list_users,
    remove_user,
    set_password,
    user_name,
)


def _admin_config(ctx: Context) -> dict[str, str | int | float | bool]:
    return ctx.connection(registry=False).kafka_config({"log_level": 0})


@click.group()
def users() -> None:
    """SCRAM-SHA-512 credentials of the broker's principals (run as the admin).

    A principal User:NAME authenticates as NAME with its password; what it may do is
    the ACLs' business (`hallpass acl apply`).
    """


@users.command("add")
@click.argument("name")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File holding the password (first line; mode 600).",
)
@pass_context
def users_add(ctx: Context, name: str, password_file: Path) -> None:
    """Create NAME's credential, or replace its password."""
    password = read_secret_file(password_file)
    user = set_password(_admin_config(ctx), name, password)
    click.echo(f"{MECHANISM_NAME} credential of User:{user} set")


@users.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also remove the user this command authenticates as.")
@pass_context
def users_remove(ctx: Context, name: str, force: bool) -> None:
    """Delete NAME's credential: it can no longer authenticate."""
    config = _admin_config(ctx)
    if user_name(name) == config.get("sasl.username") and not force:
        raise click.ClickException(
            f"{name} is the user this command runs as: removing it would lock you out "
            "(add --force if that is what you want)"
        )
    user = remove_user(config, name)
    click.echo(f"{MECHANISM_NAME} credential of User:{user} removed")


@users.command("list")
@pass_context
def users_list(ctx: Context) -> None:
    """Every user with a SCRAM credential."""
    found = list_users(_admin_config(ctx))
    for user, mechanisms in found.items():
        click.echo(f"User:{user:<30} {', '.join(mechanisms)}")
