"""The ``postdesk`` command: one group, one module per family of subcommands.

Global options come first (``postdesk --config FILE tickets list``). Errors a user can fix end
with one line on stderr that says what to fix and a documented exit code, never a traceback:
1 usage or not found, 65 unusable input, 75 temporary failure (retry later), 78 configuration
(also a database ``postdesk init`` has not set up: no other command ever creates one).
"""

from __future__ import annotations

import importlib
import sys

import click

from postdesk import __version__
from postdesk import config as config_module
from postdesk.errors import ConfigError
from postdesk.runtime.app import App
from postdesk.runtime.logs import setup as _setup_logging

EX_DATAERR, EX_TEMPFAIL, EX_CONFIG = 65, 75, 78


class Lazy:
    """Loads settings and builds the App on first use, so ``--help`` works without a config."""

    def __init__(self, path: str | None, log_level: str | None) -> None:
        self.path = path
        self.log_level = log_level
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            try:
                settings = config_module.load(self.path)
            except ConfigError as exc:
                click.echo(f"postdesk: configuration error: {exc}", err=True)
                sys.exit(EX_CONFIG)
            _setup_logging(self.log_level or settings.logging.level,
                           settings.logging.redact_addresses, settings.logging.format)
            self._app = App(settings)
        return self._app


# The module that defines each command. A module is imported when its command runs (or for
# ``--help``, which lists them all): ``postdesk ingest``, which an MTA runs once per mail, then
# imports neither the template editor nor the report's charts.
COMMANDS = {
    "init": "commands", "serve": "commands", "ingest": "commands", "doctor": "doctor_cmd",
    "agents": "agents_cmd", "queues": "agents_cmd", "imap": "imap_cmd", "orgs": "orgs_cmd",
    "quarantine": "queues", "outbox": "queues", "report": "report_cmd",
    "scheduler": "scheduler_cmd", "templates": "templates_cmd", "tickets": "tickets_cmd",
    "contacts": "contacts_cmd",
}


class Group(click.Group):
    """The command group, loading each command's module on first use (click's lazy
    subcommands); a database that cannot be read ends in one line, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"postdesk.cli.{COMMANDS[name]}")
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            url = ctx.obj.app.settings.database.url if ctx.obj and ctx.obj._app else "?"
            exit_if_not_initialised(exc, url)
            if not _is_database_error(exc):
                raise
            from postdesk.store.db import shown_url  # noqa: PLC0415

            click.echo(f"postdesk: cannot use the database {shown_url(url)}: {_first_line(exc)} "
                       "(is it running? can this user open it?)", err=True)
            sys.exit(EX_TEMPFAIL)


def exit_if_not_initialised(exc: BaseException, url: str) -> None:
    """Exit 78 (configuration: an MTA keeps the mail) with "run `postdesk init`" when ``exc``
    (or the database error behind it) says the database has no postdesk schema yet."""
    if url == "?":
        return
    from postdesk.store.db import shown_url  # noqa: PLC0415
    from postdesk.store.errors import needs_init  # noqa: PLC0415

    cause = exc if _is_database_error(exc) else exc.__cause__
    why = needs_init(cause, url) if _is_database_error(cause) else None
    if why:
        click.echo(f"postdesk: the database {shown_url(url)} is not set up: {why} "
                   "(run `postdesk init` first)", err=True)
        sys.exit(EX_CONFIG)


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415  (only imported once a command failed)

    return isinstance(exc, DBAPIError)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar=None,
              help="Configuration file (else $POSTDESK_CONFIG, else ./postdesk.toml).")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                               case_sensitive=False),
              help="Override [logging] level.")
@click.version_option(__version__, prog_name="postdesk")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """postdesk: an email-first ticketing gateway."""
    ctx.obj = Lazy(config_path, log_level)


def main() -> None:
    cli(prog_name="postdesk")
