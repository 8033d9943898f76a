"""Benchmark ``process``: the worker alone, in this process, on mails already stored.

N corpus mails are stored with the real ``Intake`` (in batches of 32, as group commit does),
then ``Worker.process_until_idle()`` is timed: mails/s. Each run times it twice: on the seeded
store, and on the same store after a history of H earlier mails was added (H closed tickets,
each with its contact, its message and its processed inbound row, written in bulk), so that a
query whose cost grows with the store shows as a ratio below 1. Then the same mails are
processed by one and by several worker processes on one store (each a spawned process with its
own ``App``, warmed up, all started together): how far processing grows with workers, as when
several ``postdesk serve --no-smtp`` share a PostgreSQL database. One more run under
pyinstrument says where the time goes, by pipeline stage (``bench.profile``). Each timed run
also gives the CPU seconds the processing used per mail (``time.process_time``, the worker
warmed up first; summed over the processes when there are several): unlike mails/s, it does
not depend on how many cores the machine has or how busy they are. Size ``mixed`` is issue
24's corpus (``bench.corpus.mixed``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import multiprocessing
import random
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert

from bench import corpus, sweep
from bench.profile import breakdown, profiled
from bench.stats import median, spread
from bench.stores import Stores, make_app
from postdesk.mail.envelope import Envelope
from postdesk.store.db import Database
from postdesk.store.models import Contact, Inbound, Message, Ticket

BATCH = 32
SPAWN = multiprocessing.get_context("spawn")
CHILD_TIMEOUT = 900.0  # seconds a worker process may take for its share of the mails


def add_history(url: str, count: int, first: int) -> None:
    """``count`` closed tickets numbered from ``first``, each with its contact, its customer
    message and the processed inbound mail that opened it (Core ``executemany``)."""
    rng = random.Random(11)
    database = Database(url)
    with database.engine.begin() as conn:
        for start in range(first, first + count, sweep.CHUNK):
            numbers = range(start, min(start + sweep.CHUNK, first + count))
            tickets = [sweep.ticket_row(n, "closed", False, rng) for n in numbers]
            conn.execute(insert(Contact.__table__), [sweep.contact_row(t) for t in tickets])
            conn.execute(insert(Ticket.__table__), tickets)
            conn.execute(insert(Message.__table__), [sweep.message_row(t) for t in tickets])
            conn.execute(insert(Inbound.__table__), [_inbound_row(t) for t in tickets])
    if not database.is_sqlite:
        sweep.fix_sequences(database, ("contact", "ticket", "message", "inbound"))
    database.dispose()


def _inbound_row(ticket: dict) -> dict:
    raw = f"Message-ID: {ticket['thread_root']}\r\nSubject: {ticket['subject']}\r\n\r\n".encode()
    return {"id": ticket["id"], "received_at": ticket["created_at"], "source": "smtp",
            "mail_from": ticket["requester"], "rcpt_tos": f'["{corpus.DESK}"]', "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(), "raw": raw, "status": "processed",
            "attempts": 1, "processed_at": ticket["created_at"], "ticket_id": ticket["id"],
            "message_id": ticket["thread_root"], "outcome": f"new ticket #{ticket['id']}"}


def _prepared(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path,
              history: int = 0, extra: str = ""):
    url = stores.clone(kind, seeds, "process")
    if history:
        # Past the seeds' ids: the inbound rows of the seeds and of the mails to come differ in
        # number, so history takes ids far above both.
        add_history(url, history, first=10 * (seeds + count) + 1)
    app = make_app(workdir / f"process-{kind}", url, extra)
    intake = app.intake()
    mails = corpus.mails_of(size, count, tickets=seeds)
    for start in range(0, count, BATCH):
        intake.store_many([(m.raw, Envelope(m.sender, (corpus.DESK,), "smtp", "127.0.0.1"))
                           for m in mails[start:start + BATCH]])
    return url, app


def timed(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path,
          history: int = 0, inspect: Callable[[str], dict] | None = None,
          extra: str = "") -> dict:
    """One timed worker run; ``extra`` is added to the desk's configuration, ``inspect(url)``
    may read the store before it is dropped (what became of the mails): its keys are added to
    the result."""
    url, app = _prepared(stores, kind, size, count, seeds, workdir, history, extra)
    worker = app.worker()
    try:
        worker.warm_up()  # as a running worker is: the language model and templates loaded
        cpu, began = time.process_time(), time.perf_counter()
        done = worker.process_until_idle()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        found = {"processed": done, "per_s": done / wall, "ms_per_mail": wall * 1000 / done,
                 "cpu_share": cpu / wall, "cpu_ms_per_mail": cpu * 1000 / done}
        return {**found, **inspect(url)} if inspect else found
    finally:
        app.db.dispose()
        stores.drop(url)


def timed_workers(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path,
                  workers: int) -> dict:
    """``count`` stored mails processed by ``workers`` worker processes at once: mails/s from
    the moment all are warmed up to the moment the last one finds the queue empty."""
    url, app = _prepared(stores, kind, size, count, seeds, workdir)
    app.db.dispose()
    ready, finished = SPAWN.Barrier(workers + 1), SPAWN.Queue()
    children = [SPAWN.Process(target=_worker_process, daemon=True, args=(
        str(workdir / f"process-{kind}-worker{n}"), url, ready, finished))
        for n in range(workers)]
    try:
        for child in children:
            child.start()
        ready.wait(CHILD_TIMEOUT)
        began = time.perf_counter()
        results = [finished.get(timeout=CHILD_TIMEOUT) for _ in children]
        if failed := [r for r in results if isinstance(r, str)]:
            raise RuntimeError(f"a worker process failed: {failed[0]}")
        wall = max(ended for _, ended, _ in results) - began
        done = sum(n for n, _, _ in results)
        return {"processed": done, "per_s": done / wall, "ms_per_mail": wall * 1000 / done,
                "cpu_ms_per_mail": sum(cpu for _, _, cpu in results) * 1000 / done,
                "shares": sorted(n for n, _, _ in results)}
    finally:
        for child in children:
            if child.pid is None:  # never started
                continue
            child.join(10)
            if child.is_alive():
                child.kill()
        stores.drop(url)


def _worker_process(folder: str, url: str, ready, finished) -> None:
    try:
        app = make_app(Path(folder), url)
        worker = app.worker()
        worker.warm_up()
        ready.wait(CHILD_TIMEOUT)
        cpu = time.process_time()
        done = worker.process_until_idle()
        # CLOCK_MONOTONIC: one clock for all processes; the CPU this process used
        finished.put((done, time.perf_counter(), time.process_time() - cpu))
        app.db.dispose()
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        finished.put(f"{type(exc).__name__}: {exc}")


def profile(stores: Stores, kind: str, size: str, count: int, seeds: int, workdir: Path,
            html: Path | None = None) -> dict:
    url, app = _prepared(stores, kind, size, count, seeds, workdir)
    worker = app.worker()
    try:
        session, done = profiled(worker.process_until_idle)
        if html is not None:
            from pyinstrument.renderers import HTMLRenderer  # noqa: PLC0415

            html.write_text(HTMLRenderer().render(session), encoding="utf-8")
        return breakdown(session, done)
    finally:
        app.db.dispose()
        stores.drop(url)


def run(kinds: tuple[str, ...], size: str, count: int, runs: int, seeds: int, stores: Stores,
        workdir: Path, say=print, html_dir: Path | None = None, history: int = 0,
        workers: tuple[int, ...] = (), profile_too: bool = True) -> dict:
    found: dict[tuple[str, int, int | None], list[dict]] = {}
    for _ in range(runs):
        for kind in kinds:
            for past in (0, history) if history else (0,):
                result = timed(stores, kind, size, count, seeds, workdir, past)
                found.setdefault((kind, past, None), []).append(result)
                say(f"  process {size} {kind}, history {past:,}: {result['per_s']:.1f} mails/s, "
                    f"{result['cpu_ms_per_mail']:.2f} ms of CPU per mail")
            for number in workers:
                result = timed_workers(stores, kind, size, count, seeds, workdir, number)
                found.setdefault((kind, 0, number), []).append(result)
                say(f"  process {size} {kind}, {number} worker process{'es' * (number > 1)}: "
                    f"{result['per_s']:.1f} mails/s, {result['cpu_ms_per_mail']:.2f} ms of CPU per "
                    f"mail (shares {result['shares']})")
    summary = [{"kind": kind, "size": size, "mails": count, "history": past, "runs": len(items),
                "workers": number, "per_s": median(i["per_s"] for i in items),
                "per_s_range": spread(i["per_s"] for i in items),
                "ms_per_mail": median(i["ms_per_mail"] for i in items),
                "cpu_ms_per_mail": median(i["cpu_ms_per_mail"] for i in items)}
               for (kind, past, number), items in found.items()]
    for row in summary:
        if row["workers"] is None:  # the same run's store without history is the baseline
            base = next(r for r in summary if r["kind"] == row["kind"] and not r["history"]
                        and r["workers"] is None)
            row["ratio_to_fresh"] = row["per_s"] / base["per_s"] if base["per_s"] else None
        else:  # one worker process is the baseline of several
            base = next((r for r in summary if r["kind"] == row["kind"] and r["workers"] == 1),
                        None)
            row["ratio_to_one"] = row["per_s"] / base["per_s"] if base else None
    profiles = {}
    if not profile_too:
        kinds = ()
    elif importlib.util.find_spec("pyinstrument") is None:
        say("  process profile skipped: pyinstrument is not installed (pip install -e '.[bench]')")
        kinds = ()
    for kind in kinds:
        html = html_dir / f"process-{kind}.html" if html_dir else None
        profiles[kind] = profile(stores, kind, size, count, seeds, workdir, html)
        say(f"  process {kind} profile: " + ", ".join(
            f"{s['stage']} {s['share']:.0%}" for s in profiles[kind]["stages"][:6]))
    # Every single run, as rows (``--json`` writes them; a JSON object cannot have tuple keys).
    runs = [{"kind": kind, "history": past, "workers": number, **result}
            for (kind, past, number), items in found.items() for result in items]
    return {"runs": runs, "summary": summary, "profiles": profiles}
