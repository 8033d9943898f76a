"""Keep a process's long-lived threads running: start a dead one again, or end the process.

Every part that lives as long as the process (the intake's writer, the worker and its claim
renewals, the sender, the scheduler, each IMAP poller, the WAL checkpointer, the watch over the
processing child and the child's over its lifeline) runs in a :class:`Supervised` thread. When its body raises, or returns without having been asked to
stop, the death is logged with its traceback and the body is started again after a pause that
doubles from 1 s up to a minute. A part that dies ``DEATHS_ALLOWED`` times within
``DEATH_WINDOW`` seconds is broken beyond what a restart mends: the process then ends at once
with exit code 70 (``EX_SOFTWARE``) and one CRITICAL line naming the part, so that systemd (or
``serve``'s own watch, for the processing child) starts a fresh one. A process that looks alive
while one of its parts is dead is what this module exists to prevent.

Each part's state (``running``, ``restarting``, ``stopped``, ``given-up``) is told to the
observers given to :func:`watch_states` (the health metrics of ``serve``).

``fault_point`` is for tests only: ``POSTDESK_TEST_FAULTS="intake-writer,worker:2"`` makes the
named points raise :class:`InjectedFault` (once, N times, or ``always``), so that a test can
break each part of a real ``postdesk serve``. Unset, a fault point costs one dictionary lookup.
``POSTDESK_TEST_RESTART_PAUSE`` (tests only, seconds) replaces the first pause of 1 s, so that
a test can let a part die five times without waiting 15 s of pauses; it still doubles up to a
minute. Unset, or not a positive number, the pause is 1 s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("postdesk.supervision")

EX_SOFTWARE = 70
PAUSE_VARIABLE = "POSTDESK_TEST_RESTART_PAUSE"
MAX_PAUSE = 60.0
DEATHS_ALLOWED = 5
DEATH_WINDOW = 300.0
FAULTS_VARIABLE = "POSTDESK_TEST_FAULTS"


def _first_pause(text: str | None) -> float:
    """1 s, or the positive number of seconds a test set in ``POSTDESK_TEST_RESTART_PAUSE``."""
    try:
        pause = float(text) if text else 1.0
    except ValueError:
        return 1.0
    return pause if 0 < pause <= MAX_PAUSE else 1.0


FIRST_PAUSE = _first_pause(os.environ.get(PAUSE_VARIABLE))


_observers: list[Callable[[str, str], None]] = []


def watch_states(observer: Callable[[str, str], None]) -> None:
    """Call ``observer(name, state)`` each time a part of this process changes state."""
    _observers.append(observer)


def end_process(name: str, deaths: int, window: float) -> None:
    """Give up on a broken part: one clear line, then exit 70 at once. Not a graceful stop:
    the broken part might never stop; a mail not yet answered is sent again by its sender."""
    log.critical("%s died %d times within %.0f s; stopping the process (exit %d) so that "
                 "its supervisor starts it afresh", name, deaths, window, EX_SOFTWARE)
    logging.shutdown()
    os._exit(EX_SOFTWARE)


class Supervised:
    """A thread that runs ``target()`` again when it dies; see the module docstring.

    ``stopping()`` tells a normal end (the part was asked to stop) from a death.
    """

    def __init__(self, name: str, target: Callable[[], None], *,
                 stopping: Callable[[], bool], pause: tuple[float, float] = (FIRST_PAUSE, MAX_PAUSE),
                 deaths_allowed: int = DEATHS_ALLOWED, window: float = DEATH_WINDOW,
                 give_up: Callable[[str, int, float], None] = end_process,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.target = target
        self.stopping = stopping
        self.pause, self.deaths_allowed, self.window = pause, deaths_allowed, window
        self.give_up = give_up
        self.clock = clock
        self.restarts = 0
        self._state = "new"  # running, restarting, stopped, given-up
        self._deaths: deque[float] = deque()
        self._wake = threading.Event()  # cuts a restart pause short once stopping
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._wake.set()
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state
        for observer in _observers:
            observer(self.name, state)

    def _run(self) -> None:
        while True:
            self.state = "running"
            error = _run_once(self.target)
            if self.stopping():
                break
            pause = self._died(error)
            if pause is None:
                self.state = "given-up"
                self.give_up(self.name, len(self._deaths), self.window)
                return
            self.state = "restarting"
            if self._wake.wait(pause) and self.stopping():
                break
            self.restarts += 1
            log.warning("%s started again (restart %d)", self.name, self.restarts)
        self.state = "stopped"

    def _died(self, error: BaseException | None) -> float | None:
        """Count the death; the pause before the restart, or None to give up."""
        now = self.clock()
        self._deaths.append(now)
        while self._deaths and now - self._deaths[0] > self.window:
            self._deaths.popleft()
        deaths = len(self._deaths)
        how = f"{type(error).__name__}: {error}" if error else "it ended without being asked"
        if deaths >= self.deaths_allowed:
            log.error("%s died (%s)", self.name, how, exc_info=error)
            return None
        first, cap = self.pause
        pause = min(cap, first * 2 ** (deaths - 1))
        log.error("%s died (%s); starting it again in %.0f s (death %d of %d allowed within "
                  "%.0f s)", self.name, how, pause, deaths, self.deaths_allowed, self.window,
                  exc_info=error)
        return pause


def _run_once(target: Callable[[], None]) -> BaseException | None:
    try:
        target()
    except BaseException as exc:  # noqa: BLE001 - a thread's death, whatever killed it
        return exc
    return None


def supervise(name: str, target: Callable[[], None], *, stopping: Callable[[], bool],
              **options) -> Supervised:
    """Start ``target`` in a :class:`Supervised` thread named ``name``."""
    part = Supervised(name, target, stopping=stopping, **options)
    part.start()
    return part


class InjectedFault(RuntimeError):
    """Raised by a fault point that a test switched on."""


def _faults_from(text: str) -> dict[str, float]:
    faults = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition(":")
        faults[name] = float("inf") if count == "always" else int(count or 1)
    return faults


_faults = _faults_from(os.environ.get(FAULTS_VARIABLE, ""))
_faults_lock = threading.Lock()


def fault_point(name: str) -> None:
    """Raise :class:`InjectedFault` if a test asked this point to fail (tests only)."""
    if not _faults or name not in _faults:
        return
    with _faults_lock:
        left = _faults.get(name, 0)
        if left <= 0:
            return
        _faults[name] = left - 1
    raise InjectedFault(f"{name}: fault injected by {FAULTS_VARIABLE}")
