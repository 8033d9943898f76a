"""Benchmark ``outbound``: acknowledgements rendered and queued, then sent to a local SMTP sink.

N tickets are written first (untimed). Timed, part 1: one transaction per ticket that queues
its ``ticket_created`` acknowledgement through the real ``Notifier`` (render, compose, outbox
row, outgoing message row), as the worker does. Part 2: the real ``Sender`` with
``[outbound] transport = "smtp"`` drains the outbox to the do-nothing sink (its own process).
Baselines in the same run: the same bytes sent with smtplib to the same sink, one connection
per mail (what ``SmtpTransport`` did before issue #8) and one connection for all (the ceiling:
the sender now keeps one connection per batch of 50 and also writes each row's status).
"""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

from bench import procs
from bench.corpus import DESK
from bench.stats import median, ratio, spread
from bench.stores import Stores, make_app
from bench.sink import HOST
from postdesk.store import tickets
from postdesk.store.clock import utcnow
from postdesk.store.models import Outbox


def _tickets(app, count: int) -> list:
    now = utcnow()
    with app.db.session() as session:
        made = []
        for number in range(count):
            address = f"reader{number}@client{number % 53}.example"
            tickets.ensure_contact(session, address, f"Reader {number}", now)
            locale = "fr" if number % 2 else "en"
            made.append(tickets.create_ticket(session, now, subject=f"Question {number}",
                                              requester=address, locale=locale))
    return made


def _queue(app, made: list) -> float:
    notifier = app.desk.notifier
    began = time.perf_counter()
    for ticket in made:
        with app.db.session() as session:
            ticket = session.merge(ticket, load=False)
            variables = {"customer": {"name": "Reader", "address": ticket.requester},
                         "message": {"text": "Bonjour, ma commande n'est pas arrivée.",
                                     "from_name": "Reader", "from_address": ticket.requester,
                                     "subject": ticket.subject, "attachments": []}}
            notifier.notify(session, utcnow(), ticket, "ticket_created", [ticket.requester],
                            variables=variables, in_reply_to=f"<q{ticket.id}@client.example>")
    return time.perf_counter() - began


def _raw_mails(app) -> list[tuple[bytes, str]]:
    with app.db.reader() as session:
        return [(row.raw, row.primary_rcpt) for row in session.query(Outbox).all()]


def _smtplib(port: int, mails: list[tuple[bytes, str]], reuse: bool) -> float:
    began = time.perf_counter()
    if reuse:
        with smtplib.SMTP(HOST, port, timeout=30) as smtp:
            for raw, rcpt in mails:
                smtp.sendmail(DESK, [rcpt], raw)
    else:
        for raw, rcpt in mails:
            with smtplib.SMTP(HOST, port, timeout=30) as smtp:
                smtp.sendmail(DESK, [rcpt], raw)
    return time.perf_counter() - began


def one_run(stores: Stores, kind: str, count: int, workdir: Path) -> dict:
    sink, port = procs.start_sink(workdir / "outbound-sink.log")
    url = stores.empty(kind, "outbound")
    extra = f'[outbound]\ntransport = "smtp"\nhost = "{HOST}"\nport = {port}\n'
    app = make_app(workdir / f"outbound-{kind}", url, extra=extra)
    try:
        made = _tickets(app, count)
        queue_seconds = _queue(app, made)
        sender = app.sender()
        began = time.perf_counter()
        sent = sender.send_until_idle()
        send_seconds = time.perf_counter() - began
        connections = sender.transport.connections
        mails = _raw_mails(app)
        fresh = _smtplib(port, mails, reuse=False)
        reused = _smtplib(port, mails, reuse=True)
        return {"count": count, "queued_per_s": count / queue_seconds, "sent": sent,
                "sent_per_s": sent / send_seconds, "connections": connections,
                "smtplib_per_connection_per_s": len(mails) / fresh,
                "smtplib_one_connection_per_s": len(mails) / reused,
                "ratio_to_smtplib_per_connection": ratio(sent / send_seconds, len(mails) / fresh),
                "ratio_to_smtplib_one_connection": ratio(sent / send_seconds, len(mails) / reused),
                "load": procs.load_average()}
    finally:
        app.db.dispose()
        stores.drop(url)
        procs.stop(sink)


def run(kinds: tuple[str, ...], count: int, runs: int, stores: Stores, workdir: Path,
        say=print) -> dict:
    found: list[dict] = []
    for _ in range(runs):
        for kind in kinds:
            result = {"kind": kind, **one_run(stores, kind, count, workdir)}
            found.append(result)
            say(f"  outbound {kind}: queued {result['queued_per_s']:.0f}/s, sent "
                f"{result['sent_per_s']:.0f}/s over {result['connections']} connection(s) "
                f"(smtplib alone {result['smtplib_per_connection_per_s']:.0f}/s per-mail "
                f"connection, {result['smtplib_one_connection_per_s']:.0f}/s one connection)")
    names = ("queued_per_s", "sent_per_s", "smtplib_per_connection_per_s",
             "smtplib_one_connection_per_s", "ratio_to_smtplib_per_connection",
             "ratio_to_smtplib_one_connection")
    summary = []
    for kind in kinds:
        items = [f for f in found if f["kind"] == kind]
        row = {"kind": kind, "count": count, "runs": len(items)}
        for name in names:
            row[name] = median(i[name] for i in items)
            row[f"{name}_range"] = spread(i[name] for i in items)
        summary.append(row)
    return {"runs": found, "summary": summary}
