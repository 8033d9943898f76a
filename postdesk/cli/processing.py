"""The processing process of ``postdesk serve``: worker, sender and scheduler on the second core.

The SMTP edge is an asyncio loop that must answer 250 within milliseconds; the worker parses,
threads and renders for several milliseconds per mail. In one process they share one
interpreter lock, and accepted mail waited behind processing (49 accepted mails/s with the
worker in a thread, against 636/s with none). So ``serve`` keeps the edge (SMTP/LMTP, IMAP
pollers, the group commit) in its own process and runs the rest in a child it supervises:

- the child is started with ``spawn`` (never ``fork``: the parent already holds database
  connections and threads) and receives the settings, two cross-process events that wake its
  worker and sender, and a stop event;
- it watches a pipe whose other end only the parent holds: when the parent dies, even by
  SIGKILL, the pipe ends and the child finishes its current mail and exits — no orphan goes on
  working beside the next gateway (and if it did, claims keep the two apart);
- a child that dies is started again after a pause that doubles up to a minute; its claims are
  given back by the new worker's start-up recovery, so no mail is lost.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading

from postdesk.config import Settings

log = logging.getLogger("postdesk.serve")

SPAWN = multiprocessing.get_context("spawn")
STOP_GRACE_SECONDS = 30.0
MAX_RESTART_PAUSE = 60.0


class ProcessingChild:
    """Start, watch, restart and stop the child running ``worker``/``sender``/``scheduler``."""

    def __init__(self, settings: Settings, *, worker: bool, sender: bool, scheduler: bool) -> None:
        self.settings = settings
        self.parts = {"worker": worker, "sender": sender, "scheduler": scheduler}
        self.worker_wake = SPAWN.Event()
        self.sender_wake = SPAWN.Event()
        self.stop_event = SPAWN.Event()
        self.process = None
        self._lifeline = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="processing-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        reader, writer = SPAWN.Pipe(duplex=False)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self.process = SPAWN.Process(
            target=child_main, name="postdesk-processing", daemon=False,
            args=(self.settings, self.parts, level, self.worker_wake, self.sender_wake,
                  self.stop_event, reader))
        self.process.start()
        reader.close()  # only the child holds the reading end; ours is the lifeline
        self._lifeline = writer
        log.info("processing process %s started (%s)", self.process.pid,
                 ", ".join(name for name, wanted in self.parts.items() if wanted))

    def _watch(self) -> None:
        pause = 1.0
        while not self._stopping.is_set():
            self.process.join(timeout=0.5)
            if self.process.exitcode is None or self._stopping.is_set():
                continue
            log.error("processing process %s stopped unexpectedly (exit %s); starting it again "
                      "in %.0f s", self.process.pid, self.process.exitcode, pause)
            self._lifeline.close()
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, MAX_RESTART_PAUSE)
            self.restarts += 1
            self._spawn()

    def stop(self) -> None:
        """Ask the child to finish its current mail and exit; kill it after a grace period."""
        self._stopping.set()
        self.stop_event.set()
        self.worker_wake.set()
        self.sender_wake.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.process is None:
            return
        self.process.join(timeout=STOP_GRACE_SECONDS)
        if self.process.exitcode is None:
            log.error("processing process %s did not stop within %.0f s; killing it",
                      self.process.pid, STOP_GRACE_SECONDS)
            self.process.kill()
            self.process.join(timeout=5)
        if self._lifeline is not None:
            self._lifeline.close()


def child_main(settings: Settings, parts: dict[str, bool], level: str, worker_wake, sender_wake,
               stop_event, lifeline) -> None:
    """The child's body: worker, sender and scheduler threads until told to stop."""
    from postdesk.cli import _setup_logging  # noqa: PLC0415
    from postdesk.cli.app import App  # noqa: PLC0415
    from postdesk.cli.serve import Services  # noqa: PLC0415

    _setup_logging(level)
    # The parent decides when to stop (it forwards SIGTERM through stop_event); a terminal's
    # Ctrl-C reaches the whole process group and must not cut a mail in half here.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())
    threading.Thread(target=_await_parent, args=(lifeline, stop_event), name="lifeline",
                     daemon=True).start()
    services = Services(App(settings), smtp=False, stop_event=stop_event,
                        worker_wake=worker_wake, sender_wake=sender_wake, **parts)
    services.start_threads()
    while not stop_event.wait(1.0):
        pass
    services.stop_parts()
    log.info("processing process stopped")


def _await_parent(lifeline, stop_event) -> None:
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    if not stop_event.is_set():
        logging.getLogger("postdesk.serve").warning(
            "the serve process is gone; finishing the current mail and stopping")
    stop_event.set()
