"""``postdesk doctor``: check the configuration and the database before (or beside) ``serve``.

It says what ``serve`` would warn about at start and whether the database is ready; it never
creates or changes anything. Exit 0 when all is well, 1 when something deserves a look (a
warning), 78 for a configuration error or a database ``postdesk init`` must set up, 75 when
the database cannot be reached.
"""

from __future__ import annotations

import click
from sqlalchemy.exc import OperationalError

from postdesk.cli import EX_TEMPFAIL, cli, exit_if_not_initialised
from postdesk.cli.output import fail
from postdesk.config import startup_warnings


@cli.command()
@click.pass_obj
def doctor(lazy) -> None:
    """Check the configuration and the database; print what serve would warn about."""
    from postdesk.store import migrate  # noqa: PLC0415  (alembic is slow to import)
    from postdesk.store.db import shown_url  # noqa: PLC0415

    app = lazy.app
    settings = app.settings
    click.echo(f"configuration: {settings.source}")
    url = shown_url(settings.database.url)
    try:
        current, head = migrate.current_revision(app.db), migrate.head_revision()
    except OperationalError as exc:
        exit_if_not_initialised(exc, settings.database.url)
        fail(f"cannot open the database {url}: {exc.orig}", EX_TEMPFAIL)
    if current != head:
        fail(f"the database {url} is at revision {current or 'empty'}, postdesk needs {head} "
             "(run `postdesk init` first)", 78)
    click.echo(f"database: {url} at revision {current}")
    warnings = startup_warnings(settings)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if warnings:
        raise SystemExit(1)
    click.echo("no problems found")
