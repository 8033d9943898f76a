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


def test_the_processing_sides_writers_take_turns_and_the_edge_waits_for_the_one_writing():
    """Two threads of the processing process (the worker and the sender) write one at a time;
    the edge, arriving while the first writes, waits for that one only and goes before the
    second, which gives way to it."""
    priority = WritePriority()
    order: list[str] = []
    first_inside, edge_waiting = threading.Event(), threading.Event()

    def write(name: str, inside: threading.Event | None) -> None:
        with priority.writing():
            order.append(f"{name} begins")
            if inside is not None:
                inside.set()
                assert edge_waiting.wait(30)
                time.sleep(0.05)
            order.append(f"{name} commits")

    first = threading.Thread(target=write, args=("worker", first_inside))
    first.start()
    assert first_inside.wait(30)
    second = threading.Thread(target=write, args=("sender", None))
    second.start()
    time.sleep(0.02)  # the sender waits for its turn, uncounted

    def edge() -> None:
        with priority.announce(max_wait=5):
            order.append("edge writes")
            time.sleep(0.05)

    edge_thread = threading.Thread(target=edge)
    edge_thread.start()
    while not priority.wanted():
        time.sleep(0.001)
    edge_waiting.set()
    for thread in (first, second, edge_thread):
        thread.join(30)
    assert order == ["worker begins", "worker commits", "edge writes", "sender begins",
                     "sender commits"]
    assert not priority.wanted()
    with priority.writing(), priority.writing():  # a thread's nested transaction: no wait
        pass
    assert priority._writing.value == 0


def test_a_nested_write_does_not_give_way_to_an_edge_that_waits_for_the_outer_one():
    """The edge waits for the outer transaction to end; a nested one must not wait for the
    edge in turn (each would wait for the other until ``give_way``'s bound)."""
    priority = WritePriority()
    done = threading.Event()

    def edge() -> None:
        with priority.announce(max_wait=5):
            done.set()

    with priority.writing():
        thread = threading.Thread(target=edge)
        thread.start()
        while not priority.wanted():
            time.sleep(0.001)
        began = time.monotonic()
        with priority.writing():
            nested = time.monotonic() - began
        assert not done.is_set()
    thread.join(30)
    assert done.is_set() and nested < 0.1
