"""Benchmark ``sweep``: one scheduler run (``run_sweeps``) with 10,000 due tickets among many.

The data set is written in bulk with SQLAlchemy Core ``executemany`` on the tables of
``postdesk.store.models`` (one contact per requester, one customer message per ticket):
mostly closed tickets, some open, new, recently resolved (inside the reopen window, survey
done) and pending-not-yet-due, plus ``due`` pending tickets whose first reminder is due. So
every sweep runs its claim query over the whole table, and only the reminder sweep finds
work: ``due`` reminders rendered and queued. Each timed run works on its own copy of the
built data set. PostgreSQL is ANALYZEd after the load (autovacuum would do it in
production); SQLite is not (postdesk never runs ANALYZE on it).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.profile import breakdown, profiled
from bench.stats import median, spread
from bench.stores import Stores, make_app
from postdesk.store.db import Database
from postdesk.store.models import Contact, Message, Ticket

NOW = datetime(2025, 3, 20, 9, 0, tzinfo=UTC)
CHUNK = 5000
MIX = (("closed", 0.70), ("open", 0.10), ("new", 0.05), ("resolved", 0.05), ("pending", 0.10))


def ticket_row(number: int, status: str, due: bool, rng: random.Random) -> dict:
    created = NOW - timedelta(days=30 + rng.random() * 300)
    row = {"id": number, "subject": f"Demande {number}", "status": status,
           "requester": f"c{number}@client{number % 997}.example", "queue": "default",
           "priority": "normal", "locale": "fr" if number % 2 else "en", "created_at": created,
           "updated_at": created, "reminders_sent": 0, "thread_root": f"<t{number}@client.example>",
           **dict.fromkeys(("pending_since", "next_due_at", "resolved_at", "resolution",
                            "closed_at"))}
    if due:
        row.update(pending_since=NOW - timedelta(days=2.5), next_due_at=NOW - timedelta(hours=12))
    elif status == "pending":
        row.update(pending_since=NOW - timedelta(hours=6), next_due_at=NOW + timedelta(days=2))
    elif status == "resolved":
        row.update(resolved_at=NOW - timedelta(days=2), resolution="agent")
    elif status == "closed":
        row.update(resolved_at=created + timedelta(days=3), closed_at=created + timedelta(days=10),
                   resolution="agent")
    return row


def contact_row(ticket: dict) -> dict:
    number = ticket["id"]
    return {"id": number, "address": ticket["requester"], "name": f"Client {number}",
            "locale": ticket["locale"], "created_at": ticket["created_at"]}


def message_row(ticket: dict) -> dict:
    """The customer mail that opened ``ticket``."""
    return {"id": ticket["id"], "ticket_id": ticket["id"], "direction": "in", "kind": "customer",
            "from_addr": ticket["requester"], "subject": ticket["subject"],
            "message_id": ticket["thread_root"], "text": "Bonjour, ...", "body": "Bonjour",
            "threaded_by": "new", "created_at": ticket["created_at"]}


def _rows(total: int, due: int, seed: int = 7):
    """(contact, ticket, message) rows; ``due`` tickets spread evenly over the id range."""
    rng = random.Random(seed)
    step = total // due
    statuses, weights = zip(*MIX)
    for number in range(1, total + 1):
        is_due = number % step == 0 and number // step <= due
        status = "pending" if is_due else rng.choices(statuses, weights)[0]
        ticket = ticket_row(number, status, is_due, rng)
        yield contact_row(ticket), ticket, message_row(ticket)


def build(stores: Stores, kind: str, total: int, due: int) -> tuple[str, float]:
    """A migrated database holding the data set; returns its URL and the seconds it took."""
    began = time.perf_counter()
    url = stores.empty(kind, f"sweep{total}")
    database = Database(url)
    batch: list[tuple] = []
    with database.engine.begin() as conn:
        for rows in _rows(total, due):
            batch.append(rows)
            if len(batch) == CHUNK:
                _flush(conn, batch)
        _flush(conn, batch)
    if not database.is_sqlite:
        fix_sequences(database, ("contact", "ticket", "message"))
    database.dispose()
    return url, time.perf_counter() - began


def _flush(conn, batch: list[tuple]) -> None:
    if batch:
        for table, index in ((Contact, 0), (Ticket, 1), (Message, 2)):
            conn.execute(insert(table.__table__), [rows[index] for rows in batch])
    batch.clear()


def fix_sequences(database: Database, tables: tuple[str, ...]) -> None:
    """After rows written with their own ids on PostgreSQL: move the sequences past them, and
    ANALYZE (autovacuum would in production)."""
    with database.engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))")
        conn.exec_driver_sql("ANALYZE")


def timed(stores: Stores, kind: str, source: str, workdir: Path) -> dict:
    from postdesk.scheduler.sweeps import run_sweeps  # noqa: PLC0415 - written alongside

    url = stores.copy(source, "sweeprun")
    app = make_app(workdir / f"sweep-{kind}", url)
    try:
        began = time.perf_counter()
        actions = run_sweeps(app.db, app.desk, NOW)
        seconds = time.perf_counter() - began
        kinds: dict[str, int] = {}
        for action in actions:
            kinds[action.kind] = kinds.get(action.kind, 0) + 1
        return {"seconds": seconds, "actions": len(actions), "kinds": kinds,
                "per_s": len(actions) / seconds if seconds else None}
    finally:
        app.db.dispose()
        stores.drop(url)


def profiled_sweep(stores: Stores, kind: str, workdir: Path, total: int = 20_000,
                   due: int = 1_000) -> dict:
    """Where a sweep's time goes (pyinstrument, by stage), on a small data set."""
    from postdesk.scheduler.sweeps import run_sweeps  # noqa: PLC0415

    source, _ = build(stores, kind, total, due)
    app = make_app(workdir / f"sweep-profile-{kind}", source)
    try:
        session, actions = profiled(lambda: run_sweeps(app.db, app.desk, NOW))
        return {"tickets": total, "due": due, **breakdown(session, len(actions))}
    finally:
        app.db.dispose()
        stores.drop(source)


def run(kinds: tuple[str, ...], sizes: tuple[int, ...], due: int, runs: int, stores: Stores,
        workdir: Path, say=print, profile: bool = True) -> dict:
    found: list[dict] = []
    profiles = {kind: profiled_sweep(stores, kind, workdir) for kind in kinds} if profile else {}
    for kind, found_profile in profiles.items():
        say(f"  sweep {kind} profile: " + ", ".join(
            f"{s['stage']} {s['share']:.0%}" for s in found_profile["stages"][:5]))
    for kind in kinds:
        for total in sizes:
            source, build_seconds = build(stores, kind, total, due)
            say(f"  sweep {kind} {total:,} tickets built in {build_seconds:.0f}s")
            for _ in range(runs):
                result = {"kind": kind, "tickets": total, "due": due,
                          "build_seconds": build_seconds, **timed(stores, kind, source, workdir)}
                found.append(result)
                say(f"  sweep {kind} {due:,} due among {total:,}: {result['seconds']:.1f}s "
                    f"({result['actions']} actions)")
            stores.drop(source)
    return {"runs": found, "summary": summarise(found), "profiles": profiles}


def summarise(found: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for item in found:
        groups.setdefault((item["kind"], item["tickets"]), []).append(item)
    rows = [{"kind": kind, "tickets": total, "due": items[0]["due"], "runs": len(items),
             "seconds": median(i["seconds"] for i in items),
             "seconds_range": spread(i["seconds"] for i in items),
             "actions": items[0]["actions"], "per_s": median(i["per_s"] for i in items)}
            for (kind, total), items in groups.items()]
    smallest = {r["kind"]: r["seconds"] for r in sorted(rows, key=lambda r: -r["tickets"])}
    for row in rows:
        row["ratio_to_smallest"] = row["seconds"] / smallest[row["kind"]]
    return rows
