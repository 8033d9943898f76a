"""``postdesk imap check [NAME]``: for ops setting up a shared mailbox — can we log in, which
folders exist, where the poller stands and how many mails wait."""

from __future__ import annotations

import click

from postdesk.cli import cli
from postdesk.cli.output import fail, to_json


@cli.group("imap")
def imap_group() -> None:
    """Shared mailboxes watched over IMAP ([[imap]] in the configuration)."""


@imap_group.command("check")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def imap_check(lazy, name: str | None, as_json: bool) -> None:
    """Log in to each mailbox (or NAME), list folders, show the cursor and the waiting mails."""
    from postdesk.gateway.imap import check_mailbox  # noqa: PLC0415
    from postdesk.store.leases import StoreCursors, StoreLeases  # noqa: PLC0415

    app = lazy.app
    boxes = [b for b in app.settings.imap if name in (None, b.name)]
    if not boxes:
        known = ", ".join(b.name for b in app.settings.imap) or "none configured"
        fail(f"no [[imap]] mailbox named {name!r} (mailboxes: {known})" if name else
             "no [[imap]] mailbox is configured (add one to the configuration)")
    reports = []
    for box in boxes:
        report = check_mailbox(box)
        cursor = StoreCursors(app.db).load_cursor(box.name, box.inbox)
        report["cursor"] = {"uidvalidity": cursor[0], "last_uid": cursor[1]} if cursor else None
        report["waiting"] = _waiting(report, cursor)
        report["lease"] = StoreLeases(app.db).holder(f"imap:{box.name}")
        reports.append(report)
    if as_json:
        click.echo(to_json(reports))
    else:
        for report in reports:
            _print(report)
    if not all(r.get("ok") for r in reports):
        raise SystemExit(1)


def _waiting(report: dict, cursor) -> int | None:
    inbox = report.get("inbox")
    if not inbox:
        return None
    if cursor is None or cursor[0] != inbox.get("uidvalidity"):
        return inbox.get("messages")
    return max(0, inbox.get("uidnext", 1) - 1 - cursor[1])


def _print(report: dict) -> None:
    click.echo(f"{report['mailbox']}: {report['host']}:{report['port']} ({report['security']})")
    if not report.get("ok"):
        click.echo(f"  error: {report.get('error')}")
        return
    inbox = report.get("inbox", {})
    click.echo(f"  inbox: {inbox.get('messages')} mails, {inbox.get('unseen')} unseen, "
               f"UIDVALIDITY {inbox.get('uidvalidity')}, UIDNEXT {inbox.get('uidnext')}")
    click.echo(f"  server offers IDLE: {report.get('idle')}, MOVE: {report.get('move')}")
    for folder, exists in (report.get("configured_folders") or {}).items():
        click.echo(f"  folder {folder}: {'exists' if exists else 'MISSING'}")
    cursor = report.get("cursor")
    click.echo(f"  cursor: {cursor['last_uid']} (UIDVALIDITY {cursor['uidvalidity']})" if cursor
               else "  cursor: none yet (the first poll reads the whole inbox)")
    click.echo(f"  waiting: {report.get('waiting')}")
    lease = report.get("lease")
    click.echo(f"  polled by: {lease[0]} until {lease[1]}" if lease else "  polled by: nobody")
