"""The scheduler daemon: APScheduler runs ``run_sweeps`` every ``[scheduler] interval_seconds``.

The one module that imports APScheduler. One interval job, started at once, with
``max_instances=1`` (a slow run is never overlapped by the next), ``coalesce=True`` (runs missed
while the process was busy or asleep collapse into one) and a misfire grace of one interval.
The job reads the wall clock once per run and hands it to the sweeps; it logs one line per
action; a run that fails is logged and the next interval tries again, so nothing kills the
daemon. ``start_supervised`` serves both ``postdesk serve`` and ``postdesk scheduler``:
APScheduler's loop runs in a supervised thread (:mod:`postdesk.supervision`), started again
with a fresh scheduler if it ever dies; ``run_until_signalled`` adds the clean stop on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler, SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from postdesk import metrics
from postdesk.scheduler.sweeps import run_sweeps
from postdesk.store.clock import utcnow
from postdesk.store.errors import is_unavailable
from postdesk.supervision import fault_point, supervise

log = logging.getLogger("postdesk.scheduler")
JOB_ID = "postdesk-sweeps"


def sweep_once(db, desk, clock: Callable[[], datetime] = utcnow) -> int:
    """One run of every sweep at ``clock()``; logs each action; never raises. Returns the count."""
    now = clock()
    started = time.monotonic()
    try:
        actions = run_sweeps(db, desk, now)
    except Exception as exc:  # noqa: BLE001 - the daemon must survive any failed run
        metrics.sweep_run(time.monotonic() - started, [], failed=True)
        if is_unavailable(exc):
            log.warning("sweep at %s: store unavailable, retrying next interval: %s",
                        now.isoformat(timespec="seconds"), str(exc).splitlines()[0][:300])
        else:
            log.exception("sweep at %s failed; retrying next interval",
                          now.isoformat(timespec="seconds"))
        return 0
    metrics.sweep_run(time.monotonic() - started, [action.kind for action in actions])
    for action in actions:
        level = logging.ERROR if action.kind.startswith("failed") else logging.INFO
        log.log(level, "%s%s", action.line,
                f" message_id={action.message_id}" if action.message_id else "")
    return len(actions)


def _with_sweeps(scheduler: BaseScheduler, app) -> BaseScheduler:
    interval = max(1.0, float(app.settings.scheduler.interval))
    scheduler.add_job(sweep_once, "interval", args=(app.db, app.desk), id=JOB_ID,
                      seconds=interval, next_run_time=datetime.now(UTC), max_instances=1,
                      coalesce=True, misfire_grace_time=max(1, int(interval)))
    log.info("scheduler started: sweeps every %gs, %d tickets per batch", interval,
             app.settings.scheduler.batch_size)
    return scheduler


class SupervisedScheduler:
    """APScheduler's loop in a supervised thread: a fresh scheduler each time it (re)starts;
    ``stop()`` waits for a run in progress, then ends it."""

    def __init__(self, app) -> None:
        self._app = app
        self._stopping = threading.Event()
        self._current: BlockingScheduler | None = None
        self._part = supervise("scheduler", self._run, stopping=self._stopping.is_set)

    @property
    def running(self) -> bool:
        return self._part.is_alive() and self._current is not None and self._current.running

    def _run(self) -> None:
        self._current = _with_sweeps(BlockingScheduler(timezone=UTC), self._app)
        fault_point("scheduler")
        if not self._stopping.is_set():
            self._current.start()  # returns once shut down

    def stop(self, wait: bool = True, timeout: float = 60.0) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self._part.is_alive() and time.monotonic() < deadline:
            current = self._current
            if current is not None and current.running:
                with contextlib.suppress(SchedulerNotRunningError):
                    current.shutdown(wait=wait)
            self._part.join(0.1)
        log.info("scheduler stopped")


def start_supervised(app) -> SupervisedScheduler:
    """Start the sweeps for an app-like object in a supervised thread."""
    return SupervisedScheduler(app)


def run_until_signalled(app) -> None:
    """``postdesk scheduler``: sweep every interval until SIGTERM or SIGINT, then stop cleanly."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    handle = start_supervised(app)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        log.info("stopping")
        handle.stop()
