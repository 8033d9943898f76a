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
from postdesk.runtime.app import App  # light: it imports each part on first use

EX_DATAERR, EX_TEMPFAIL, EX_CONFIG = 65, 75, 78


class Lazy:
    """Loads settings and builds the App on first use, so ``--help`` works without a config
    (and without importing the settings' pydantic models or the store)."""

    def __init__(self, path: str | None, log_level: str | None) -> None:
        self.path = path
        self.log_level = log_level
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from postdesk import config as config_module  # noqa: PLC0415
            from postdesk.errors import ConfigError  # noqa: PLC0415
            from postdesk.runtime.logs import setup as _setup_logging  # noqa: PLC0415

            try:
                settings = config_module.load(self.path)
            except ConfigError as exc:
                click.echo(f"postdesk: configuration error: {exc}", err=True)
                sys.exit(EX_CONFIG)
            _setup_logging(self.log_level or settings.logging.level,
                           settings.logging.redact_addresses, settings.logging.format)
            self._app = App(settings)
        return self._app


# The module that defines each command, and the first paragraph of its help. A module is
# imported only when its command runs: ``postdesk ingest``, which an MTA runs once per mail,
# imports neither the template editor nor the report's charts, and ``postdesk --help`` lists
# the commands from these summaries without importing any (tests/unit/test_layers.py checks
# that each summary is its command's help).
COMMANDS = {
    "agents": ("agents_cmd", "The agents of the desk (from [[agents]] in the configuration)."),
    "contacts": ("contacts_cmd", "Contacts and their deliverability (bounce scores, "
                                 "undeliverable addresses)."),
    "doctor": ("doctor_cmd", "Check the configuration, store, ports, relay, IMAP logins, agent "
                             "trust and templates."),
    "imap": ("imap_cmd", "Shared mailboxes watched over IMAP ([[imap]] in the configuration)."),
    "ingest": ("commands", "Store one raw mail from FILE or standard input (the MTA pipe)."),
    "init": ("commands", "Create or upgrade the database schema (safe to run again)."),
    "orgs": ("orgs_cmd", "Customer organisations: their admins receive the history of all "
                         "their tickets."),
    "outbox": ("queues", "Mails postdesk sends: queued, sent, failed."),
    "quarantine": ("queues", "Mails that could not be processed, kept with the reason."),
    "queues": ("agents_cmd", "The queues of the desk (from [[queues]] in the configuration)."),
    "report": ("report_cmd", "Tickets opened and resolved, response times, reminders, "
                             "surveys, escalations."),
    "scheduler": ("scheduler_cmd", "Send reminders, resolve and close tickets, send surveys: "
                                   "as a daemon, or once."),
    "serve": ("commands", "Run the SMTP/LMTP server, the worker and the sender until SIGTERM "
                          "or SIGINT."),
    "templates": ("templates_cmd", "Edit, preview and version the notification templates."),
    "tickets": ("tickets_cmd", "List and show tickets."),
}


class Group(click.Group):
    """The command group, loading each command's module on first use (click's lazy
    subcommands); a database that cannot be read ends in one line, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of ``--help``, from the summaries of ``COMMANDS`` for the commands whose
        module is not loaded (click would import every module to ask each its help)."""
        names = [name for name in self.list_commands(ctx)
                 if name not in self.commands or not self.commands[name].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = [(name, self.listed(name).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def listed(self, name: str) -> click.Command:
        """The command ``name`` if its module is loaded, else a stand-in holding its summary."""
        return self.commands.get(name) or click.Command(name, help=COMMANDS[name][1])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"postdesk.cli.{COMMANDS[name][0]}")
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
    # Not imported for the asking: a command that never loaded SQLAlchemy raised no error of it.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.DBAPIError)


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
