"""``postdesk orgs add|list|remove``: customer organisations, their mail domains and admins.

Organisations written in the configuration (``[[organisations]]``) are listed with source
``config`` and are changed by editing the file; ``orgs add`` and ``orgs remove`` manage the
stored ones (source ``store``). A domain belongs to one organisation only.
"""

from __future__ import annotations

import click

from postdesk.cli import cli
from postdesk.cli.output import fail, table, to_json
from postdesk.mail.addresses import domain_of, normalise_address
from postdesk.store import organisations
from postdesk.store.clock import utcnow


@cli.group("orgs")
def orgs_group() -> None:
    """Customer organisations: their admins receive the history of all their tickets."""


@orgs_group.command("add")
@click.argument("name")
@click.option("--domain", "domains", multiple=True, metavar="DOMAIN",
              help="Mail domain of the organisation (repeatable; at least one).")
@click.option("--admin", "admins", multiple=True, metavar="ADDRESS",
              help="Address that sees all the organisation's tickets (repeatable).")
@click.pass_obj
def orgs_add(lazy, name: str, domains: tuple[str, ...], admins: tuple[str, ...]) -> None:
    """Add organisation NAME with its domains and admins."""
    name = " ".join(name.split())
    clean_domains, clean_admins = _domains(domains), _admins(admins)
    app = lazy.app
    with app.db.session() as session:
        known = organisations.all_organisations(session, app.settings)
        _check_free(name, clean_domains, clean_admins, known)
        organisations.add(session, utcnow(), name, clean_domains, clean_admins)
    click.echo(f"organisation {name!r} added: domains {', '.join(clean_domains)}; "
               f"admins {', '.join(clean_admins) or '(none)'}")


def _domains(domains: tuple[str, ...]) -> list[str]:
    if not domains:
        fail("give at least one --domain (e.g. --domain example.com)")
    clean = []
    for raw in domains:
        domain = domain_of("x@" + raw.strip().removeprefix("@"))
        if domain is None or "." not in domain:
            fail(f"--domain {raw!r} is not a mail domain (write e.g. example.com)")
        if domain not in clean:
            clean.append(domain)
    return clean


def _admins(admins: tuple[str, ...]) -> list[str]:
    clean = []
    for raw in admins:
        address = normalise_address(raw)
        if address is None:
            fail(f"--admin {raw!r} is not a mail address (write e.g. anne@example.com)")
        if address not in clean:
            clean.append(address)
    return clean


def _check_free(name: str, domains: list[str], admins: list[str],
                known: list[organisations.OrgInfo]) -> None:
    """One name, one owner per domain, one organisation per admin."""
    if not name:
        fail("give the organisation a name")
    for org in known:
        if org.name.casefold() == name.casefold():
            fail(f"organisation {org.name!r} already exists ({_where(org)})")
        if taken := sorted(set(domains) & set(org.domains)):
            fail(f"domain {taken[0]} already belongs to organisation {org.name!r} "
                 f"({_where(org)})")
        if taken := sorted(set(admins) & set(org.admins)):
            fail(f"{taken[0]} is already an admin of organisation {org.name!r} "
                 f"({_where(org)}); an address administers one organisation")


def _where(org: organisations.OrgInfo) -> str:
    return "in the configuration" if org.source == organisations.CONFIG else "stored"


@orgs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def orgs_list(lazy, as_json: bool) -> None:
    """Organisations from the configuration, then the stored ones."""
    app = lazy.app
    with app.db.reader() as session:
        found = organisations.all_organisations(session, app.settings)
    if as_json:
        click.echo(to_json([{"name": o.name, "source": o.source, "domains": list(o.domains),
                             "admins": list(o.admins)} for o in found]))
        return
    table(["name", "source", "domains", "admins"],
          [(o.name, o.source, ", ".join(o.domains), ", ".join(o.admins)) for o in found],
          empty="no organisations (add one with postdesk orgs add NAME --domain DOMAIN)")


@orgs_group.command("remove")
@click.argument("name")
@click.pass_obj
def orgs_remove(lazy, name: str) -> None:
    """Remove the stored organisation NAME (its tickets stay)."""
    app = lazy.app
    with app.db.session() as session:
        org = organisations.find(session, app.settings, name)
        if org is None:
            fail(f"there is no organisation {name!r} (see postdesk orgs list)")
        if org.source == organisations.CONFIG:
            fail(f"organisation {org.name!r} is defined in {app.settings.source}; "
                 "remove it from [[organisations]] there")
        organisations.remove(session, org.name)
    click.echo(f"organisation {org.name!r} removed")
