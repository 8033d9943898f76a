"""``postdesk agents list`` and ``postdesk queues list``: who answers, and where mail goes."""

from __future__ import annotations

import click

from postdesk.cli import cli
from postdesk.cli.output import table, to_json
from postdesk.config import startup_warnings


@cli.group("agents")
def agents_group() -> None:
    """The agents of the desk (from [[agents]] in the configuration)."""


@agents_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def agents_list(lazy, as_json: bool) -> None:
    settings = lazy.app.settings
    rows = [{"address": a.address, "name": a.name, "queues": list(a.queues)}
            for a in settings.agents]
    if as_json:
        click.echo(to_json({"agents": rows, "auth_required": settings.agent_auth.required,
                            "trusted_authserv_id": settings.agent_auth.trusted_authserv_id,
                            "warnings": startup_warnings(settings)}))
        return
    table(["address", "name", "queues"],
          [(r["address"], r["name"], ", ".join(r["queues"])) for r in rows],
          empty="no agents configured (add [[agents]] to the configuration)")
    for warning in startup_warnings(settings):
        click.echo(f"warning: {warning}", err=True)


@cli.group("queues")
def queues_group() -> None:
    """The queues of the desk (from [[queues]] in the configuration)."""


@queues_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def queues_list(lazy, as_json: bool) -> None:
    settings = lazy.app.settings
    rows = [{"name": q.name, "addresses": list(q.addresses), "keywords": list(q.keywords),
             "languages": list(q.languages), "notify": list(q.notify)} for q in settings.queues]
    rows.append({"name": settings.routing.default_queue, "addresses": [], "keywords": [],
                 "languages": [], "notify": [], "default": True})
    if as_json:
        click.echo(to_json(rows))
        return
    table(["name", "addresses", "keywords", "languages", "notify"],
          [(r["name"] + (" (default)" if r.get("default") else ""), ", ".join(r["addresses"]),
            ", ".join(r["keywords"]), ", ".join(r["languages"]), ", ".join(r["notify"]))
           for r in rows])
