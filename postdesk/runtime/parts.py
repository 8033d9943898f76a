"""The worker, the sender and the scheduler of one process, as supervised threads.

``serve`` runs them in its processing child (:mod:`postdesk.runtime.processing`), or in its own
process with ``[worker] separate_process = false`` (:mod:`postdesk.runtime.serve`); both import
this module, neither imports the other's caller. Each thread is supervised
(:mod:`postdesk.supervision`): started again when it dies, or the process ends with exit 70
when it keeps dying.
"""

from __future__ import annotations

import gc
import logging
import threading

from postdesk.runtime.app import App
from postdesk.supervision import supervise

log = logging.getLogger("postdesk.serve")


class Parts:
    """Start the wanted parts as threads; :meth:`stop` lets them finish their mail."""

    def __init__(self, app: App, *, worker: bool, sender: bool, scheduler: bool,
                 stop_event: threading.Event, worker_wake, priority=None) -> None:
        self.app = app
        self.want = {"worker": worker, "sender": sender, "scheduler": scheduler}
        self.stop_event = stop_event
        self.worker_wake = worker_wake  # a stored mail rings it (threading.Event or Doorbell)
        self.sender_wake = threading.Event()  # a queued notification rings it
        if priority is not None and app.db.is_sqlite:
            # Every write transaction of the worker, the sender and the scheduler, the claims
            # and their renewals included, gives the SMTP edge its right of way.
            app.db.write_priority = priority
        self.threads: list = []  # supervised threads (postdesk.supervision)
        self.scheduler = None

    def start(self) -> None:
        if self.want["worker"]:
            worker = self.app.worker(on_queued=self.sender_wake.set)
            self._thread("worker", worker.run, self.worker_wake)
        if self.want["sender"]:
            self._thread("sender", self.app.sender().run, self.sender_wake)
        if self.want["scheduler"]:
            from postdesk.scheduler.daemon import start_supervised  # noqa: PLC0415

            self.scheduler = start_supervised(self.app)

    def _thread(self, name: str, target, wake) -> None:
        wake = _UntilStop(wake, self.stop_event)
        self.threads.append(supervise(name, lambda: target(self.stop_event, wake),
                                      stopping=self.stop_event.is_set))

    def stop(self) -> None:
        """Stop the scheduler, then let the worker and sender threads finish their mail."""
        if self.scheduler is not None:
            self.scheduler.stop()
        self.stop_event.set()
        self.worker_wake.set()
        self.sender_wake.set()
        for thread in self.threads:
            thread.join(timeout=30)


class _UntilStop:
    """A part's wake-up (``threading.Event`` or ``Doorbell``) whose ``wait`` returns at once
    once the stop is set. ``stop`` sets the stop, then rings: a loop that looked at the stop
    just before and then cleared its wake-up (``clear`` before looking for work) drained that
    ring, and slept a whole poll interval before it saw the stop."""

    __slots__ = ("_wake", "_stop")

    def __init__(self, wake, stop: threading.Event) -> None:
        self._wake, self._stop = wake, stop

    def wait(self, timeout: float | None = None) -> bool:
        if self._stop.is_set():
            return True
        return self._wake.wait(timeout)

    def is_set(self) -> bool:
        return self._wake.is_set()

    def clear(self) -> None:
        self._wake.clear()

    def set(self) -> None:
        self._wake.set()


def freeze_startup_heap() -> None:
    """Move what start-up made (modules, settings, compiled templates) out of the collector's
    reach. A full collection walks every tracked object, and a started ``serve`` holds a few
    hundred thousand of them: each one paused every thread of the process for 70–100 ms, the
    largest SMTP reply delays measured (docs/performance.md, round F). Garbage is collected
    first, so none of it is kept for ever; what start-up made stays alive anyway."""
    gc.collect()
    gc.freeze()
    log.debug("start-up heap frozen: %d objects", gc.get_freeze_count())
