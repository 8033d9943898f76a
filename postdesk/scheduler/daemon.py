"""The scheduler daemon: APScheduler runs ``run_sweeps`` every ``[scheduler] interval_seconds``.

The one module that imports APScheduler. One interval job, started at once, with
``max_instances=1`` (a slow run is never overlapped by the next), ``coalesce=True`` (runs missed
while the process was busy or asleep collapse into one) and a misfire grace of one interval.
The job reads the wall clock once per run and hands it to the sweeps; it logs one line per
action; a run that fails is logged and the next interval tries again, so nothing kills the
daemon. ``start_in_background`` serves both ``postdesk serve`` and ``postdesk scheduler``;
``run_until_signalled`` adds the clean stop on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from postdesk.scheduler.sweeps import run_sweeps
from postdesk.store.db import is_unavailable, utcnow

log = logging.getLogger("postdesk.scheduler")
JOB_ID = "postdesk-sweeps"


def sweep_once(db, desk, clock: Callable[[], datetime] = utcnow) -> int:
    """One run of every sweep at ``clock()``; logs each action; never raises. Returns the count."""
    now = clock()
    try:
        actions = run_sweeps(db, desk, now)
    except Exception as exc:  # noqa: BLE001 - the daemon must survive any failed run
        if is_unavailable(exc):
            log.warning("sweep at %s: store unavailable, retrying next interval: %s",
                        now.isoformat(timespec="seconds"), str(exc).splitlines()[0][:300])
        else:
            log.exception("sweep at %s failed; retrying next interval",
                          now.isoformat(timespec="seconds"))
        return 0
    for action in actions:
        level = logging.ERROR if action.kind.startswith("failed") else logging.INFO
        log.log(level, "%s%s", action.line,
                f" message_id={action.message_id}" if action.message_id else "")
    return len(actions)


class SchedulerHandle:
    """A running scheduler; ``stop()`` waits for a run in progress, then ends it."""

    def __init__(self, scheduler: BackgroundScheduler) -> None:
        self._scheduler = scheduler

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def stop(self, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
            log.info("scheduler stopped")


def start_in_background(app) -> SchedulerHandle:
    """Start the sweeps for an app-like object (``db``, ``desk``, ``settings``) in a thread."""
    interval = max(1.0, float(app.settings.scheduler.interval_seconds))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(sweep_once, "interval", args=(app.db, app.desk), id=JOB_ID,
                      seconds=interval, next_run_time=datetime.now(UTC), max_instances=1,
                      coalesce=True, misfire_grace_time=max(1, int(interval)))
    scheduler.start()
    log.info("scheduler started: sweeps every %gs, %d tickets per batch", interval,
             app.settings.scheduler.batch_size)
    return SchedulerHandle(scheduler)


def run_until_signalled(app) -> None:
    """``postdesk scheduler``: sweep every interval until SIGTERM or SIGINT, then stop cleanly."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    handle = start_in_background(app)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        log.info("stopping")
        handle.stop()
