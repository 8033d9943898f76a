"""The processing process of ``postdesk serve``: worker, sender and scheduler on the second core.

The SMTP edge is an asyncio loop that must answer 250 within milliseconds; the worker parses,
threads and renders for several milliseconds per mail. In one process they share one
interpreter lock, and accepted mail waited behind processing (49 accepted mails/s with the
worker in a thread, against 636/s with none). So ``serve`` keeps the edge (SMTP/LMTP, IMAP
pollers, the group commit) in its own process and runs the rest in a child it supervises:

- the child is started with ``spawn`` (never ``fork``: the parent already holds database
  connections and threads) and receives the settings and two pipes: a doorbell that wakes its
  worker when a mail is stored, a lifeline, and a third on which it says it is ready. Pipes,
  not ``multiprocessing.Event``: an Event's ``set()`` waits for every sleeper to acknowledge,
  and a sleeper killed by SIGKILL never does, which froze the edge's intake until the store
  timeout (and a child whose parent died while waiting for it to be ready, forever);
- on SQLite the two share a :class:`~postdesk.store.priority.WritePriority`, so the worker
  gives the edge the database's single write lock between two mails;
- it watches the lifeline, whose other end only the parent holds: a "stop" message, or the
  pipe's end when the parent dies (even by SIGKILL), makes the child finish its current mail
  and exit — no orphan goes on working beside the next gateway (and if it did, claims keep the
  two apart);
- a child that dies (a crash, or exit 70 when one of its threads kept dying, see
  :mod:`postdesk.supervision`) is started again after a pause that doubles up to a minute; its
  claims are given back by the new worker's start-up recovery, so no mail is lost.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import threading
import time

from postdesk.config import Settings
from postdesk.runtime.metrics_http import process_gone
from postdesk.store.priority import WritePriority
from postdesk.supervision import supervise

log = logging.getLogger("postdesk.serve")

SPAWN = multiprocessing.get_context("spawn")
STOP_GRACE_SECONDS = 30.0
READY_SECONDS = 60.0
MAX_RESTART_PAUSE = 60.0


class Doorbell:
    """The reading end of a wake-up pipe, with the part of ``threading.Event`` the worker's loop
    uses (``wait``, ``clear``, ``set``, ``is_set``); ``set`` only wakes this process's waiter,
    through a pipe of its own, so that a waiter already asleep wakes at once (the stop of the
    processing process rings it and must not wait for the worker's poll interval)."""

    def __init__(self, reader) -> None:
        self._reader = reader  # kept: closing it would close the descriptor
        self._fd = reader.fileno()
        self._local, self._local_writer = os.pipe()
        for fd in (self._fd, self._local, self._local_writer):
            os.set_blocking(fd, False)

    def wait(self, timeout: float | None = None) -> bool:
        readable, _, _ = select.select([self._fd, self._local], [], [], timeout)
        return bool(readable)

    def is_set(self) -> bool:
        return self.wait(0)

    def clear(self) -> None:
        for fd in (self._local, self._fd):
            try:
                while os.read(fd, 4096):
                    pass
            except BlockingIOError:
                pass

    def set(self) -> None:
        _ring(self._local_writer)


def ring(writer) -> None:
    """Wake the other end of a doorbell; never blocks (a full pipe has a wake-up pending)."""
    _ring(writer.fileno())


def _ring(fd: int) -> None:
    try:
        os.write(fd, b"\0")
    except OSError:  # BlockingIOError: a full pipe has a wake-up pending; or the reader is gone
        pass


class ProcessingChild:
    """Start, watch, restart and stop the child running ``worker``/``sender``/``scheduler``."""

    def __init__(self, settings: Settings, *, worker: bool, sender: bool, scheduler: bool) -> None:
        self.settings = settings
        self.parts = {"worker": worker, "sender": sender, "scheduler": scheduler}
        self._ready = None  # the reading end of the child's "ready" pipe
        self.priority = WritePriority(SPAWN)
        self.process = None
        self._lifeline = None
        self._doorbell = None
        self._stopping = threading.Event()
        # stop() writes here: the watch, waiting for the child's end, wakes up at once.
        self._halt_reader, self._halt_writer = os.pipe()
        self._watcher = None  # a supervised thread (postdesk.supervision)

    def alive(self) -> bool:
        """The child runs (asked by ``/healthz``)."""
        return self.process is not None and self.process.exitcode is None

    def wake_worker(self) -> None:
        if self._doorbell is not None:
            ring(self._doorbell)

    def start(self, ready_timeout: float = READY_SECONDS) -> None:
        """Start the child and wait until it has loaded what it needs (an interpreter, the
        parser, the language model, the templates: a second or two of a core), so that the
        SMTP edge starts listening on a quiet machine. A child that cannot start is logged and
        retried by the watcher; the edge still accepts mail meanwhile."""
        self._spawn()
        if not self._wait_ready(time.monotonic() + ready_timeout):
            log.error("processing process %s is not ready (exit %s); accepting mail anyway",
                      self.process.pid, self.process.exitcode)
        self._watcher = supervise("processing-watch", self._watch,
                                  stopping=self._stopping.is_set)

    def _wait_ready(self, deadline: float) -> bool:
        """True once the child says it is ready; False when it died first or the deadline
        passed (the pipe's end without a word means the child is gone)."""
        while (left := deadline - time.monotonic()) > 0 and self.process.exitcode is None:
            if self._ready in multiprocessing.connection.wait([self._ready, self.process.sentinel],
                                                              left):
                try:
                    return self._ready.recv_bytes() == b"ready"
                except (EOFError, OSError):
                    return False
        return False

    def _spawn(self) -> None:
        life_reader, life_writer = SPAWN.Pipe(duplex=False)
        bell_reader, bell_writer = SPAWN.Pipe(duplex=False)
        ready_reader, ready_writer = SPAWN.Pipe(duplex=False)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self.process = SPAWN.Process(
            target=child_main, name="postdesk-processing", daemon=False,
            args=(self.settings, self.parts, level, self.priority, ready_writer, life_reader,
                  bell_reader))
        self.process.start()
        life_reader.close()  # only the child holds the reading ends (and the ready writer)
        bell_reader.close()
        ready_writer.close()
        if self._ready is not None:
            self._ready.close()
        self._ready = ready_reader
        os.set_blocking(bell_writer.fileno(), False)
        self._lifeline, self._doorbell = life_writer, bell_writer
        ring(bell_writer)  # mail may have been stored while no child was listening
        log.info("processing process %s started (%s)", self.process.pid,
                 ", ".join(name for name, wanted in self.parts.items() if wanted))

    def _close_pipes(self) -> None:
        for pipe in (self._lifeline, self._doorbell, self._ready):
            if pipe is not None:
                pipe.close()
        self._lifeline = self._doorbell = self._ready = None

    def _watch(self) -> None:
        pause = 1.0
        while not self._stopping.is_set():
            # Until the child ends or stop() says so: no poll interval delays either.
            multiprocessing.connection.wait([self.process.sentinel, self._halt_reader])
            if self._stopping.is_set():
                return  # stop() reaps the child
            self.process.join(timeout=0.5)
            if self.process.exitcode is None:
                continue
            log.error("processing process %s stopped unexpectedly (exit %s); starting it again "
                      "in %.0f s", self.process.pid, self.process.exitcode, pause)
            process_gone(self.process.pid)
            self._close_pipes()
            self.priority.worker_gone()
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, MAX_RESTART_PAUSE)
            self._spawn()

    def stop(self) -> None:
        """Ask the child to finish its current mail and exit; kill it after a grace period."""
        self._stopping.set()
        if self._halt_writer is not None:
            os.write(self._halt_writer, b"\0")
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self._halt_writer is not None and (self._watcher is None
                                              or not self._watcher.is_alive()):
            os.close(self._halt_reader)
            os.close(self._halt_writer)
            self._halt_reader = self._halt_writer = None
        if self.process is None:
            return
        if self._lifeline is not None:
            try:
                self._lifeline.send_bytes(b"stop")
            except OSError:
                pass
        self.process.join(timeout=STOP_GRACE_SECONDS)
        if self.process.exitcode is None:
            log.error("processing process %s did not stop within %.0f s; killing it",
                      self.process.pid, STOP_GRACE_SECONDS)
            self.process.kill()
            self.process.join(timeout=5)
        self._close_pipes()


def child_main(settings: Settings, parts: dict[str, bool], level: str, priority: WritePriority,
               ready, lifeline, doorbell) -> None:
    """The child's body: worker, sender and scheduler threads until told to stop."""
    from postdesk.runtime.app import App  # noqa: PLC0415
    from postdesk.runtime.logs import setup as setup_logging  # noqa: PLC0415
    from postdesk.runtime.parts import Parts, freeze_startup_heap  # noqa: PLC0415

    setup_logging(level, settings.logging.redact_addresses, settings.logging.format)
    log.debug("processing process %s loading (not ready yet)", os.getpid())
    _lower_priority(settings.worker.nice)
    stop = threading.Event()
    # The parent decides when to stop (it says so on the lifeline); a terminal's Ctrl-C
    # reaches the whole process group and must not cut a mail in half here.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervise("lifeline", lambda: _await_parent(lifeline, stop), stopping=stop.is_set)
    app = App(settings)
    app.db.leave_checkpoints_to_a_thread()  # the serve process runs them (runtime.serve)
    if parts["worker"]:
        try:
            app.worker().warm_up()  # the worker thread's own warm-up then finds all loaded
        except Exception:  # noqa: BLE001 - an optimisation only; the worker retries its way
            log.exception("processing warm-up failed")
    wake = Doorbell(doorbell)
    local = Parts(app, stop_event=stop, worker_wake=wake, priority=priority, **parts)
    local.start()
    freeze_startup_heap()
    _say_ready(ready)
    stop.wait()
    local.stop()
    log.info("processing process stopped")


def _say_ready(ready) -> None:
    """Tell the parent; never blocks, and a parent gone meanwhile is not an error (the
    lifeline has already told this process to stop)."""
    try:
        ready.send_bytes(b"ready")
    except OSError:
        pass
    finally:
        ready.close()


def _lower_priority(increment: int) -> None:
    """Let the SMTP edge have the CPU first: on a loaded machine a mail waiting for its 250
    matters more than one waiting to be processed, which catches up once the burst is over."""
    if increment:
        try:
            os.nice(increment)
        except OSError as exc:  # e.g. a container that forbids it: run at the edge's priority
            log.warning("could not lower the processing process's priority: %s", exc)


def _await_parent(lifeline, stop: threading.Event) -> None:
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        if not stop.is_set():
            log.warning("the serve process is gone; finishing the current mail and stopping")
    stop.set()
