"""Command-line entrypoints: ``flask --app app ledger verify``, ``create-admin`` and ``cache clear``."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import OperationalError

from .api.schemas import NewPasswordSchema, RegisterSchema, load
from .domain.errors import BalanceError, ValidationFailed
from .domain.money import format_plain
from .services import accounts, ledger_store


@click.command("create-admin")
@click.argument("email")
@click.option("--password", help="Required for a new admin; resets the password of an existing user if given.")
@with_appcontext
def create_admin(email: str, password: str | None) -> None:
    """Create an admin account, or promote an existing user to admin.

    The email and password must pass the rules sign-up applies (an admin is no place
    for a 1-character password); an existing account's email is taken as it is.
    """
    try:
        existing = accounts.find_id(email)
        was_admin = existing is not None and accounts.get(existing).is_admin
        if password is not None:  # (a new admin without one is refused by the service)
            is_new = existing is None
            load(RegisterSchema if is_new else NewPasswordSchema,
                 {"email": email, "password": password} if is_new else {"password": password})
        user, created = accounts.make_admin(email, password)
    except ValidationFailed as exc:
        problems = "; ".join(f"{name}: {why}" for name, why in (exc.fields or {}).items())
        raise click.ClickException(f"refused: {problems or exc.message}") from None
    except BalanceError as exc:
        raise click.ClickException(exc.message) from None
    if created:
        click.echo(f"created admin {user.email} (id {user.id})")
    else:
        click.echo(f"{'already an admin:' if was_admin else 'promoted admin'} {user.email} (id {user.id})"
                   + ("; their password was reset" if password is not None else "; their password is unchanged"))


@click.group("ledger")
def ledger_group() -> None:
    """Inspect the books."""


@ledger_group.command("verify")
@with_appcontext
def verify() -> None:
    """Check cached balances against postings, and that every entry sums to zero; exit 1 on any drift."""
    try:
        report = ledger_store.verify()
    except OperationalError as exc:  # the database unreachable, or a lock held past DATABASE_LOCK_TIMEOUT
        raise click.ClickException(f"could not read the books: {str(exc.orig).strip().splitlines()[0]} "
                                   "(a lock held by another session, or the database unreachable); try again") from None
    click.echo(f"accounts: {report.accounts}  entries: {report.entries}  postings: {report.postings}  "
               f"sum of all postings: {format_plain(report.total)}")
    for code, total in sorted(report.house_balances.items()):
        click.echo(f"house account {code}: {format_plain(total)}")
    for d in report.drifts:
        shown = str if d.measure == "seq" else format_plain  # amounts in currency units, as in the summary
        click.echo(f"DRIFT {d.label}: cached {shown(d.cached)} but postings say {shown(d.posted)}", err=True)
    for ref, total in report.unbalanced_entries:
        click.echo(f"UNBALANCED entry {ref}: legs sum to {format_plain(total)}", err=True)
    if not report.clean:
        raise SystemExit(1)
    click.echo("ledger OK: every balance equals the sum of its postings, every entry sums to zero")


@click.group("cache")
def cache_group() -> None:
    """The balance cache in Redis."""


@cache_group.command("clear")
@with_appcontext
def clear_cache() -> None:
    """Delete every cached balance, so that each is read from the database again.

    The cache only ever moves forward in seq, which is right while the database only moves
    forward too. After PostgreSQL is restored from a backup, or fails over to a replica that
    had not received the last commits, it holds balances (and seqs) the database no longer
    has, for users whose ids may since have been given to someone else: clear it, then
    restart the workers (their sockets reconnect and are sent the database's truth).
    """
    if not current_app.config.get("REDIS_URL"):
        click.echo("no REDIS_URL: each server process caches in its own memory; restarting it clears that")
        return
    try:
        gone = current_app.extensions["balance.cache"].clear()
    except Exception as exc:  # noqa: BLE001 - Redis unreachable: say so in a line
        raise click.ClickException(f"could not clear the cache: {exc}") from None
    click.echo(f"deleted {gone} cached balance(s)")


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(ledger_group)
    app.cli.add_command(cache_group)
