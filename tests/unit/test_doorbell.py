"""The worker's cross-process wake-up (``runtime/processing.py``): a pipe, robust to a dead reader."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from postdesk.runtime.processing import Doorbell, ring


def test_a_ring_wakes_the_waiter_once_cleared():
    reader, writer = multiprocessing.Pipe(duplex=False)
    bell = Doorbell(reader)
    assert not bell.wait(0.01)
    ring(writer)
    ring(writer)
    assert bell.wait(1) and bell.is_set()
    bell.clear()
    assert not bell.is_set()


def test_a_local_set_wakes_the_waiter_too():
    reader, _writer = multiprocessing.Pipe(duplex=False)
    bell = Doorbell(reader)
    bell.set()
    assert bell.wait(0)
    bell.clear()
    assert not bell.wait(0.01)


def test_ringing_never_blocks_a_full_pipe_nor_a_closed_one():
    reader, writer = multiprocessing.Pipe(duplex=False)
    import os  # noqa: PLC0415

    os.set_blocking(writer.fileno(), False)
    for _ in range(200_000):  # far more than a pipe buffer holds
        ring(writer)
    reader.close()
    ring(writer)  # the reader is gone: no BrokenPipeError


def test_a_local_set_wakes_a_waiter_already_asleep():
    """The processing process's stop rings the bell while the worker sleeps in ``wait``."""
    import threading  # noqa: PLC0415

    reader, _writer = multiprocessing.Pipe(duplex=False)
    bell = Doorbell(reader)
    woken = threading.Event()
    sleeper = threading.Thread(target=lambda: bell.wait(60) and woken.set())
    sleeper.start()
    state = Path(f"/proc/self/task/{sleeper.native_id}/stat")
    for _ in range(10_000):  # until it sleeps in its wait (Linux's state S), not before
        if state.read_text().rsplit(")", 1)[1].split()[0] == "S":
            break
    bell.set()
    sleeper.join(30)
    assert woken.is_set()
