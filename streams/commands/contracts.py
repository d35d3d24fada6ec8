"""``hallpass contracts check|lock|apply``: partner contracts, checked and applied."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from streams.commands.context import Context, pass_context, progress
from streams.commands.options import (
    DEFAULT_CONTRACTS,
    contracts_dir_option,
    partner_secrets_option,
)
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import (
    check_contracts,
    contract_files,
    lock_contracts,
    review_contracts,
)
from streams.policy.pages import contract_page, field_words, index_page, page_name
from streams.processor.app import apply_contracts
from streams.settings import ENV_SECRETS_FILE


@click.group()
def contracts() -> None:
    """Partner contracts: check them, apply them to the bus."""


@contracts.command("check")
@click.argument(
    "directory", required=False, type=click.Path(path_type=Path), default=DEFAULT_CONTRACTS
)
@click.pass_context
def contracts_check(click_ctx: click.Context, directory: Path) -> None:
    """Validate every contract in DIRECTORY against the student schema and its lock.

    Each problem is printed as `file: key: reason`; the exit status is 1 if any. A
    contract whose allowances now cover fields its locked version does not hold (leaves
    the schema gained) is printed as `file: review: ...`, exit status 2: those fields
    reach no partner until the version is bumped and locked again.
    """
    catalog = field_catalog(load_schema("student_record_changed"))
    errors = check_contracts(directory, catalog)
    for error in errors:
        click.echo(str(error), err=True)
    files = contract_files(directory) if directory.is_dir() else []
    if errors:
        raise click.ClickException(f"{len(errors)} problem(s) in {directory}")
    reviews = review_contracts(directory, catalog)
    for review in reviews:
        click.echo(str(review), err=True)
    if reviews:
        click.echo(f"{len(reviews)} contract(s) in {directory} need review", err=True)
        click_ctx.exit(2)
    click.echo(f"{len(files)} contract(s) in {directory}: OK")


@contracts.command("lock")
@click.argument(
    "directory", required=False, type=click.Path(path_type=Path), default=DEFAULT_CONTRACTS
)
@click.option("--partner", default=None, help="Lock only this partner's contract.")
def contracts_lock(directory: Path, partner: str | None) -> None:
    """Record the fields each contract version resolves to, with their basis, in
    `<partner>.lock.yaml` beside it: the frozen field list the processor uses. Review the
    lock with the contract. A version already locked with other fields is refused: bump
    its `version` first."""
    catalog = field_catalog(load_schema("student_record_changed"))
    results = lock_contracts(directory, catalog, partner)
    if partner is not None and not results:
        raise click.ClickException(f"no contract of partner {partner!r} in {directory}")
    for result in results:
        if not result.written:
            click.echo(f"{result.partner}: version {result.version} already locked")
            continue
        changes = "".join(
            [
                f"; added {', '.join(result.added)}" if result.added else "",
                f"; removed {', '.join(result.removed)}" if result.removed else "",
            ]
        )
        click.echo(f"{result.partner}: locked version {result.version} in {result.path}{changes}")


@contracts.command("apply")
@contracts_dir_option
@partner_secrets_option(
    "JSON file {partner: hex secret} of the pseudonym secrets (default: $"
    + ENV_SECRETS_FILE
    + " or <data dir>/partner-secrets.json). Partners without a secret "
    "get a new one here, and only here; each partner's secret fingerprint is recorded on "
    "the bus so that a worker with other secrets refuses to start."
)
@pass_context
def contracts_apply(ctx: Context, contracts_dir: Path, partner_secrets: Path | None) -> None:
    """Create the bus's and each partner's topics (retention and cleanup as `hallpass
    topics plan` shows; existing topics whose settings differ are reported, see `hallpass
    topics check`) and register the partner's view schema, derived from its contract,
    under the topic's value subject; make and record the partners' pseudonym secrets."""
    ctx.valid_contracts(contracts_dir)
    applied_contracts = apply_contracts(
        ctx.connection(),
        contracts_dir,
        ctx.topics(),
        secrets_file=ctx.secrets_file(partner_secrets),
        note=progress,
        settings=ctx.topic_settings(),
    )
    for applied in applied_contracts:
        click.echo(
            f"{applied.partner:<20} {applied.topic:<40} schema id "
            f"{applied.schema_id:<4} {applied.fields} fields"
        )


@contracts.command("publish")
@contracts_dir_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the pages (index.html and one "
    "<partner>.html per contract; created if missing).",
)
@click.option(
    "--district",
    default="The district",
    show_default=True,
    help="The district's name as the pages say it.",
)
def contracts_publish(contracts_dir: Path, out_dir: Path, district: str) -> None:
    """Write one web page per contract for the district's website: what the contractor
    receives about students, in plain words and under which basis, and its Parents' Bill of
    Rights supplemental information (NY Ed Law 2-d, 8 NYCRR 121.3), which `contracts check`
    requires of every contract under NY-Ed-Law-2-d."""
    schema = load_schema("student_record_changed")
    catalog, words = field_catalog(schema), field_words(schema)
    loaded = Context.valid_contracts(contracts_dir)
    today = dt.date.today().isoformat()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for contract in loaded:
            (out_dir / page_name(contract)).write_text(
                contract_page(contract, catalog, district, today, words), encoding="utf-8"
            )
        (out_dir / "index.html").write_text(index_page(loaded, district, today), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(
            f"cannot write the pages to {out_dir}: {exc.strerror}. Give a writable --out DIR."
        ) from exc
    click.echo(f"wrote {len(loaded)} contract page(s) and index.html to {out_dir}")
