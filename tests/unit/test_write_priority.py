"""The edge's right of way to SQLite's write lock (``store/priority.py``), with threads."""

from __future__ import annotations

import threading
import time

from postdesk.store.priority import WritePriority


def test_the_edge_waits_for_the_worker_to_commit_and_not_longer():
    priority = WritePriority()
    order = []
    committed = threading.Event()
    inside = threading.Event()

    def worker():
        with priority.writing():
            inside.set()
            time.sleep(0.05)
            order.append("worker commits")
        committed.set()

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(30)  # the worker writes first, however late its thread runs
    began = time.monotonic()
    with priority.announce():
        order.append("edge writes")
        assert priority.wanted()
    waited = time.monotonic() - began
    thread.join()
    assert order == ["worker commits", "edge writes"]
    assert waited < 1.0
    assert not priority.wanted()


def test_a_stuck_worker_delays_the_edge_only_up_to_its_bound():
    priority = WritePriority()
    with priority.writing():
        began = time.monotonic()
        with priority.announce(max_wait=0.05):
            pass
        assert 0.04 <= time.monotonic() - began < 1.0


def test_the_worker_gives_way_while_the_edge_writes_and_then_goes_on():
    priority = WritePriority()
    released = threading.Event()
    announced = threading.Event()

    def edge():
        with priority.announce():
            announced.set()
            time.sleep(0.05)
        released.set()

    thread = threading.Thread(target=edge)
    thread.start()
    assert announced.wait(30)  # the edge writes first, however late its thread runs
    priority.give_way(max_wait=5)
    assert released.is_set()
    thread.join()
    priority.give_way(max_wait=5)  # nobody waiting: returns at once


def test_several_edge_writers_count():
    priority = WritePriority()
    with priority.announce(), priority.announce():
        assert priority.wanted()
    assert not priority.wanted()
