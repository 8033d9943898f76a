"""``postdesk scheduler``: the sweeps as a daemon, or once (``--once``, ``--now``, ``--dry-run``).

As a daemon it runs every sweep each ``[scheduler] interval_seconds`` until SIGTERM/SIGINT.
``--once`` runs each sweep once and prints one line per action; ``--now`` sets the tickets' clock
of that run (ISO-8601; a time without offset is UTC) while the mail it queues keeps the real
clock: due at once, dated when it is queued; ``--dry-run`` prints the actions a run would take
and changes nothing; ``--json`` prints the actions for scripts. Exit 0, or 1 when a ticket
failed (its line says why; it stays due) or on a usage error, 75 when the store is unreachable.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from typing import TYPE_CHECKING

import click

from postdesk.cli import EX_TEMPFAIL, cli
from postdesk.cli.commands import require_schema
from postdesk.cli.output import desk_timezone, fail, to_json
from postdesk.localtime import local
from postdesk.store.clock import as_utc, utcnow

if TYPE_CHECKING:
    from postdesk.scheduler.batches import Action

NOW_FORMAT = "write e.g. 2025-03-14T09:00:00Z, 2025-03-14T10:00+01:00 or 2025-03-14"
DRY = "dry-run: "


@cli.command("scheduler")
@click.option("--once", is_flag=True, help="Run each sweep once, print one line per action.")
@click.option("--now", "now_text", metavar="ISO-8601",
              help="Clock of this run (with --once or --dry-run); no offset means UTC.")
@click.option("--dry-run", is_flag=True, help="Print what one run would do; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
@click.pass_obj
def scheduler(lazy, once: bool, now_text: str | None, dry_run: bool, as_json: bool) -> None:
    """Send reminders, resolve and close tickets, send surveys: as a daemon, or once."""
    now = parse_now(now_text) if now_text is not None else None
    if not (once or dry_run) and (now is not None or as_json):
        fail("--now and --json go with --once or --dry-run (the daemon uses the real clock)")
    app = lazy.app
    require_schema(app)
    if not (once or dry_run):
        from postdesk.runtime import CannotListen  # noqa: PLC0415
        from postdesk.runtime.metrics_http import metrics_for  # noqa: PLC0415
        from postdesk.scheduler.daemon import run_until_signalled  # noqa: PLC0415  (APScheduler)

        try:
            with metrics_for(app):
                run_until_signalled(app)
        except CannotListen as exc:  # nothing has started yet
            fail(f"{exc} (change [{exc.section}] listen or stop the other server)")
        return
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    from postdesk.scheduler.sweeps import run_sweeps  # noqa: PLC0415

    now = now or utcnow()
    desk = replace(app.desk, notifier=app.desk.notifier.with_clock(utcnow))
    try:
        actions = run_sweeps(app.db, desk, now, dry_run=dry_run)
    except OperationalError as exc:
        fail(f"cannot reach the database: {str(exc.orig).strip()}", EX_TEMPFAIL)
    _report(actions, now, dry_run, as_json)
    if any(action.kind.startswith("failed") for action in actions):
        raise SystemExit(1)


def parse_now(text: str) -> datetime:
    """``--now`` as aware UTC; a bad value ends the command with a one-line error."""
    try:
        return as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        fail(f"--now: {text!r} is not an ISO-8601 time ({NOW_FORMAT})")


def _report(actions: list[Action], now: datetime, dry_run: bool, as_json: bool) -> None:
    when = local(now, desk_timezone()).isoformat(timespec="seconds")
    if as_json:
        rows = [{**a.as_dict(), "message_id": None if dry_run else a.message_id}
                for a in actions]
        click.echo(to_json({"now": when, "dry_run": dry_run, "actions": rows}))
        return
    for action in actions:
        click.echo(f"{DRY if dry_run else ''}{action.line}")
    if dry_run:
        click.echo(f"dry run at {when}: {len(actions)} action(s) would be taken, "
                   "nothing was changed", err=True)
    else:
        click.echo(f"sweeps at {when}: {len(actions)} action(s)", err=True)
