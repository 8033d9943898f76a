"""Supervised threads: a dead part starts again after a doubling pause; one that keeps dying
ends the process (here: a recorded give-up); a part asked to stop is not restarted."""

from __future__ import annotations

import threading

import pytest

from postdesk import supervision
from postdesk.supervision import InjectedFault, Supervised, fault_point


class Part:
    """A part whose body dies ``deaths`` times, then runs until asked to stop."""

    def __init__(self, deaths: int) -> None:
        self.deaths = deaths
        self.runs = 0
        self.stop = threading.Event()
        self.running = threading.Event()

    def body(self) -> None:
        self.runs += 1
        if self.runs <= self.deaths:
            raise RuntimeError(f"death {self.runs}")
        self.running.set()
        self.stop.wait(10)


class Pauses:
    """Records the restart pauses instead of sleeping them."""

    def __init__(self, part: Supervised) -> None:
        self.seen: list[float] = []
        part._wake.wait = self.wait  # noqa: SLF001 - the pause, without the sleep

    def wait(self, seconds: float) -> bool:
        self.seen.append(seconds)
        return False


def test_a_dead_part_starts_again_with_doubling_pauses():
    part = Part(deaths=3)
    given_up = []
    supervised = Supervised("worker", part.body, stopping=part.stop.is_set,
                            give_up=lambda *args: given_up.append(args))
    pauses = Pauses(supervised)
    supervised.start()
    assert part.running.wait(5)
    assert (pauses.seen, supervised.restarts, supervised.state) == ([1.0, 2.0, 4.0], 3, "running")
    part.stop.set()
    supervised.join(5)
    assert supervised.state == "stopped" and not given_up


def test_pauses_stop_growing_at_a_minute():
    part = Part(deaths=9)
    supervised = Supervised("sender", part.body, stopping=part.stop.is_set, deaths_allowed=100)
    pauses = Pauses(supervised)
    supervised.start()
    assert part.running.wait(5)
    part.stop.set()
    supervised.join(5)
    assert pauses.seen == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_part_that_keeps_dying_gives_up(caplog):
    part = Part(deaths=100)
    given_up = threading.Event()
    calls = []

    def give_up(*args):
        calls.append(args)
        given_up.set()

    supervised = Supervised("intake-writer", part.body, stopping=part.stop.is_set,
                            give_up=give_up)
    pauses = Pauses(supervised)
    supervised.start()
    assert given_up.wait(5)
    supervised.join(5)
    assert calls == [("intake-writer", 5, 300.0)]
    assert pauses.seen == [1, 2, 4, 8] and supervised.state == "given-up"
    assert part.runs == 5


def test_deaths_older_than_the_window_are_forgotten():
    part = Part(deaths=8)
    now = [0.0]

    def clock() -> float:
        now[0] += 100.0  # each death 100 s after the last
        return now[0]

    given_up = []
    supervised = Supervised("imap-support", part.body, stopping=part.stop.is_set, window=250,
                            clock=clock, give_up=lambda *args: given_up.append(args))
    pauses = Pauses(supervised)
    supervised.start()
    assert part.running.wait(5)
    part.stop.set()
    supervised.join(5)
    assert not given_up  # never more than three deaths within 250 s
    assert pauses.seen == [1, 2, 4, 4, 4, 4, 4, 4]


def test_a_part_that_returns_unasked_is_a_death_and_one_asked_to_stop_is_not(caplog):
    stop = threading.Event()
    runs = []

    def body():
        runs.append(1)
        if len(runs) == 2:
            stop.set()

    supervised = Supervised("checkpointer", body, stopping=stop.is_set)
    Pauses(supervised)
    supervised.start()
    supervised.join(5)
    assert len(runs) == 2 and supervised.state == "stopped"
    assert "checkpointer died (it ended without being asked)" in caplog.text


def test_a_stop_during_the_pause_ends_the_part_at_once():
    stop = threading.Event()
    died = threading.Event()

    def body():
        died.set()
        raise RuntimeError("dead")

    supervised = Supervised("worker", body, stopping=stop.is_set, pause=(60.0, 60.0))
    supervised.start()
    assert died.wait(5)
    stop.set()
    supervised.join(5)
    assert not supervised.is_alive() and supervised.restarts == 0


def test_the_give_up_line_is_clear_and_the_exit_code_is_70(monkeypatch, caplog):
    exits = []
    monkeypatch.setattr(supervision.os, "_exit", exits.append)
    monkeypatch.setattr(supervision.logging, "shutdown", lambda: None)
    supervision.end_process("intake-writer", 5, 300.0)
    assert exits == [70]
    assert "intake-writer died 5 times within 300 s; stopping the process (exit 70)" in caplog.text


def test_fault_points_fire_as_many_times_as_asked(monkeypatch):
    monkeypatch.setattr(supervision, "_faults", supervision._faults_from("worker:2,sender,x:always"))
    for _ in range(2):
        with pytest.raises(InjectedFault, match="worker"):
            fault_point("worker")
    fault_point("worker")
    with pytest.raises(InjectedFault):
        fault_point("sender")
    fault_point("sender")
    fault_point("scheduler")
    for _ in range(10):
        with pytest.raises(InjectedFault):
            fault_point("x")
