"""``postdesk serve`` runs its worker, sender and scheduler in a child process it supervises.

Driven as ops see it: the real command, a real SMTP session, the process tree read from /proc.
The child must be restarted when it dies, must not outlive a parent killed with SIGKILL, and
with ``[worker] separate_process = false`` there is no child at all; ``[worker] processes``
runs more of them on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.acceptance.test_serve import POSTDESK, Desk, desk  # noqa: F401 - the fixture
from tests.helpers import make_mail, outbound_mails


def children(pid: int) -> list[int]:
    """The processing children of ``pid`` (multiprocessing's resource tracker is left out)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return [c for c in found if b"spawn_main" in _cmdline(c)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped


def store_says(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


# Seconds a niced child may take to load on a machine busy with other tests (60 were exceeded
# at a load average of 18 on 2 cores); a wait ends as soon as its condition holds.
LOADED = 120


def start_after_children(desk: Desk, children_count: int) -> None:
    """``desk.start()``, but waiting ``LOADED`` seconds for each child: ``serve`` listens only
    once each of its children, started one after the other, is ready (``Desk.start`` waits 60 s
    in all, which three children loading on a busy machine exceeded)."""
    handle = desk.log.open("ab")
    desk.proc = subprocess.Popen([*POSTDESK, "--config", str(desk.config), "serve"],
                                 stdout=handle, stderr=handle, cwd=desk.folder)
    desk.wait_for(lambda: _listening(desk), timeout=LOADED * children_count)


def _listening(desk: Desk) -> bool:
    assert desk.proc.poll() is None, desk.log.read_text()
    try:
        with socket.create_connection(("127.0.0.1", desk.port), timeout=0.5):
            return True
    except OSError:
        return False


def processing_child(desk: Desk) -> int:
    [child] = desk.wait_for(lambda: [c for c in children(desk.proc.pid) if alive(c)],
                            timeout=LOADED)
    return child


def test_one_serve_through_its_processing_childs_life(tmp_path, db_url):
    """One ``serve`` (each start costs about 3 s of CPU), its child's whole life in turn:

    - ``[worker] nice`` (default 10): the child runs at a lower CPU priority, so the edge
      answers SMTP first when the CPU is short;
    - a full garbage collection over start-up's objects, and a WAL checkpoint inside the edge's
      commit, each delayed SMTP replies (docs/performance.md, round F): each process freezes
      its start-up heap, and on SQLite a thread of the serve process runs the checkpoints;
    - a dead processing child is started again and nothing is lost: the mail sent while it was
      dead becomes ticket 1 and is acknowledged;
    - SIGTERM stops both processes cleanly (exit 0, the restarted child gone, its last line
      logged) and, on SQLite, leaves an empty WAL."""
    desk = Desk(tmp_path, db_url, extra='[logging]\nlevel = "DEBUG"\n')
    desk.run("init")
    try:
        desk.start()
        first = processing_child(desk)
        parent_nice = os.getpriority(os.PRIO_PROCESS, desk.proc.pid)
        assert os.getpriority(os.PRIO_PROCESS, first) == min(parent_nice + 10, 19)
        desk.wait_for(lambda: desk.log.read_text().count("start-up heap frozen") == 2,
                      timeout=LOADED)

        os.kill(first, signal.SIGKILL)
        desk.send(make_mail(message_id="<after-kill@example.com>"))
        second = desk.wait_for(lambda: [c for c in children(desk.proc.pid)
                                        if alive(c) and c != first], timeout=LOADED)
        assert second
        desk.wait_for(lambda: outbound_mails(desk.folder / "outbound"), timeout=LOADED)
        assert desk.ticket(1)["messages"][0]["message_id"] == "<after-kill@example.com>"
        log = desk.log.read_text()
        assert "stopped unexpectedly" in log and "starting it again" in log

        assert desk.stop() == 0
        assert not alive(second[0])
        assert "processing process stopped" in desk.log.read_text()
        if db_url.startswith("sqlite"):
            path = Path(db_url.removeprefix("sqlite:///"))
            assert not path.with_name(path.name + "-wal").exists() \
                or path.with_name(path.name + "-wal").stat().st_size == 0
            with sqlite3.connect(path) as connection:
                assert connection.execute("SELECT count(*) FROM ticket").fetchone() == (1,)
    finally:
        desk.kill()


def test_the_child_does_not_outlive_a_killed_parent(desk):
    desk.start()
    child = processing_child(desk)
    desk.kill()  # SIGKILL
    desk.wait_for(lambda: not alive(child), timeout=LOADED)


def test_a_child_still_starting_does_not_outlive_a_killed_parent(desk):
    """The parent killed while it waits for its child to be ready: the child, which learns it
    from the lifeline before it is ready, still stops (it used to hang for ever in a
    ``multiprocessing.Event.set()`` that waited for the dead parent to wake up)."""
    handle = desk.log.open("ab")
    desk.proc = subprocess.Popen([*POSTDESK, "--config", str(desk.config), "--log-level",
                                  "debug", "serve"], stdout=handle, stderr=handle, cwd=desk.folder)
    child = processing_child(desk)
    desk.wait_for(lambda: "(not ready yet)" in desk.log.read_text(), timeout=LOADED)
    desk.kill()  # SIGKILL, while the child loads (its warm-up takes a second or more)
    # It stops once its warm-up is over, which on a busy machine is what LOADED bounds.
    desk.wait_for(lambda: not alive(child), timeout=LOADED)
    assert "the serve process is gone" in desk.log.read_text()


def test_one_process_when_asked(tmp_path, db_url):
    desk = Desk(tmp_path, db_url, extra="[worker]\nseparate_process = false\n")
    desk.run("init")
    try:
        desk.start()
        desk.send(make_mail(message_id="<one-process@example.com>"))
        desk.wait_for(lambda: outbound_mails(desk.folder / "outbound"), timeout=LOADED)
        assert [c for c in children(desk.proc.pid) if alive(c)] == []
        assert desk.stop() == 0
    finally:
        desk.kill()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_more_worker_processes_share_the_queue_on_postgres(tmp_path, db_url):
    """``[worker] processes = 3``: three processing children, each with its sender; the first
    also runs the sweeps. Requests each followed at once by the customer's own follow-up all
    thread."""
    desk = Desk(tmp_path, db_url, extra="[worker]\nprocesses = 3\n")
    desk.run("init")
    try:
        start_after_children(desk, 3)
        started = desk.wait_for(lambda: len(found := [c for c in children(desk.proc.pid)
                                                      if alive(c)]) == 3 and found,
                                timeout=LOADED)
        requests = 12
        for i in range(requests):
            sender = f"customer{i % 4}@firm.example"
            desk.send(make_mail(sender=sender, subject=f"Request {i}",
                                message_id=f"<request{i}@firm.example>"), sender=sender)
            desk.send(make_mail(sender=sender, subject=f"Re: Request {i}", body="Also this.\n",
                                message_id=f"<more{i}@firm.example>",
                                in_reply_to=f"<request{i}@firm.example>"), sender=sender)
        store = sa.create_engine(db_url)
        try:
            desk.wait_for(lambda: store_says(store, "SELECT count(*) FROM inbound WHERE status "
                                                    "NOT IN ('received', 'processing')")
                          == [(2 * requests,)], timeout=60)
            found: dict[int, list[str]] = {}
            for ticket, message_id in store_says(store, "SELECT ticket_id, message_id FROM "
                                                        "message WHERE direction = 'in'"):
                found.setdefault(ticket, []).append(message_id)
        finally:
            store.dispose()
        assert sorted(sorted(ids) for ids in found.values()) == sorted(
            sorted([f"<request{i}@firm.example>", f"<more{i}@firm.example>"])
            for i in range(requests))
        # Every request acknowledged at once: each process sends what its worker queued.
        desk.wait_for(lambda: len(outbound_mails(desk.folder / "outbound")) == requests,
                      timeout=LOADED)
        log = desk.log.read_text()
        assert log.count("started (worker, sender, scheduler)") == 1
        assert log.count("started (worker, sender)") == 2
        assert desk.stop() == 0
        assert not any(alive(child) for child in started)
    finally:
        desk.kill()
