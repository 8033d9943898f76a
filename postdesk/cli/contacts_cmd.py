"""``postdesk contacts list|clear``: the people the desk mails, and the addresses it stopped
mailing because their mail bounced (docs/automatic-mail.md, "Undeliverable addresses")."""

from __future__ import annotations

import click

from postdesk.cli import cli
from postdesk.cli.output import fail, table, to_json, when
from postdesk.mail.addresses import normalise_address
from postdesk.store import contacts


@cli.group("contacts")
def contacts_group() -> None:
    """Contacts and their deliverability (bounce scores, undeliverable addresses)."""


@contacts_group.command("list")
@click.option("--undeliverable", is_flag=True, help="Only the addresses the desk stopped mailing.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def contacts_list(lazy, undeliverable: bool, limit: int, as_json: bool) -> None:
    """Contacts, the undeliverable and the most bounced first."""
    app = lazy.app
    with app.db.reader() as session:
        rows = contacts.listing(session, undeliverable_only=undeliverable, limit=limit)
    if as_json:
        click.echo(to_json([{"address": r.address, "name": r.name,
                             "bounce_score": r.bounce_score, "last_bounce_at": r.last_bounce_at,
                             "undeliverable_since": r.undeliverable_since,
                             "undeliverable": r.undeliverable_since is not None} for r in rows]))
        return
    table(["address", "name", "bounce score", "last bounce", "undeliverable since"],
          [(r.address, r.name, f"{r.bounce_score:g}", when(r.last_bounce_at),
            when(r.undeliverable_since)) for r in rows],
          empty="no undeliverable addresses" if undeliverable else "no contacts yet")


@contacts_group.command("clear")
@click.argument("address")
@click.pass_obj
def contacts_clear(lazy, address: str) -> None:
    """Forget ADDRESS's bounces: the desk mails it again."""
    clean = normalise_address(address)
    if clean is None:
        fail(f"{address!r} is not a mail address (write e.g. jeanne@example.com)")
    app = lazy.app
    with app.db.session() as session:
        if not contacts.clear(session, clean):
            fail(f"{clean} is no contact of the desk (see postdesk contacts list)")
    click.echo(f"{clean}: bounces cleared, the desk mails it again")
