"""``hallpass users`` (SCRAM credentials) and ``hallpass acl apply`` (ACLs from the plan).

``acl plan`` and the ``acl`` group live in streams/commands/acl.py; ``apply`` joins that group
here, or a group of its own if none is registered (whatever the registration order).
"""

from __future__ import annotations

from pathlib import Path

import click

from streams.commands.bus import contracts_dir_option
from streams.commands.context import Context, pass_context, progress
from streams.security.acl_apply import apply_plan, describe_rule
from streams.security.client_settings import read_secret_file
from streams.security.users import (
    MECHANISM_NAME,
    list_users,
    remove_user,
    set_password,
    user_name,
)


def _admin_config(ctx: Context) -> dict[str, str | int | float | bool]:
    return ctx.connection().kafka_config({"log_level": 0})


def register(group: click.Group) -> None:
    @group.group()
    def users() -> None:
        """SCRAM-SHA-512 credentials of the broker's principals (run as the admin).

        A principal User:NAME authenticates as NAME with its password; what it may do is
        the ACLs' business (`hallpass acl apply`).
        """

    @users.command("add")
    @click.argument("name")
    @click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
                  required=True, help="File holding the password (first line; mode 600).")
    @pass_context
    def users_add(ctx: Context, name: str, password_file: Path) -> None:
        """Create NAME's credential, or replace its password."""
        password = read_secret_file(password_file)
        user = set_password(_admin_config(ctx), name, password)
        click.echo(f"{MECHANISM_NAME} credential of User:{user} set")

    @users.command("remove")
    @click.argument("name")
    @click.option("--force", is_flag=True,
                  help="Also remove the user this command authenticates as.")
    @pass_context
    def users_remove(ctx: Context, name: str, force: bool) -> None:
        """Delete NAME's credential: it can no longer authenticate."""
        config = _admin_config(ctx)
        if user_name(name) == config.get("sasl.username") and not force:
            raise click.ClickException(
                f"{name} is the user this command runs as: removing it would lock you out "
                "(add --force if that is what you want)")
        user = remove_user(config, name)
        click.echo(f"{MECHANISM_NAME} credential of User:{user} removed")

    @users.command("list")
    @pass_context
    def users_list(ctx: Context) -> None:
        """Every user with a SCRAM credential."""
        found = list_users(_admin_config(ctx))
        for user, mechanisms in found.items():
            click.echo(f"User:{user:<30} {', '.join(mechanisms)}")

    acl = group.commands.get("acl")
    if not isinstance(acl, click.Group):
        acl = click.Group("acl", help="Kafka ACLs derived from the contracts.")
        group.add_command(acl)
    acl.add_command(acl_apply)


@click.command("apply")
@contracts_dir_option
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@pass_context
def acl_apply(ctx: Context, contracts_dir: Path, dry_run: bool) -> None:
    """Make the broker's ACLs match the plan of the contracts (run as the admin).

    Adds the ACLs the plan has and the broker lacks; removes the ACLs hallpass manages that
    the plan no longer has, so a retired contract's vendor loses its access. Managed: every
    ALLOW ACL of a principal of the plan or recorded by an earlier apply (in the admin-only
    topic hallpass.acl.principals), and every ALLOW ACL on a topic, group or transactional
    id of the bus. DENY ACLs and ACLs of other principals on other resources are left alone.
    Re-applying an unchanged plan changes nothing.
    """
    from streams.commands.acl import load_checked_contracts, planned_acls

    topics = ctx.topics()
    plan = planned_acls(contracts_dir, topics)
    contracts = load_checked_contracts(contracts_dir)
    result = apply_plan(ctx.connection(), plan, contracts, topics, dry_run=dry_run)
    changes = result.changes
    verb = ("would add", "would remove") if dry_run else ("added", "removed")
    for rule in changes.add:
        click.echo(f"{verb[0]:<12} {describe_rule(rule)}")
    for rule in changes.remove:
        click.echo(f"{verb[1]:<12} {describe_rule(rule)}")
    for rule in changes.foreign:
        progress(f"warning: an ACL hallpass does not manage also reaches the bus: "
                 f"{describe_rule(rule)}")
    if changes.empty:
        click.echo(f"the broker's ACLs match the plan ({changes.unchanged} ACLs): "
                   "nothing changed")
    else:
        click.echo(f"{len(changes.add)} {verb[0]}, {len(changes.remove)} {verb[1]}, "
                   f"{changes.unchanged} unchanged" + ("; dry run, nothing changed"
                                                       if dry_run else ""))
