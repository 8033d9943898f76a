"""``postdesk serve``: the SMTP/LMTP edge, the worker, the sender and the scheduler, until
SIGTERM/SIGINT.

The asyncio loop owns the SMTP server; the intake's group-commit writers (one on SQLite,
``[smtp] store_writers`` on PostgreSQL) and one IMAP poller per ``[[imap]]`` mailbox run in
threads beside it. The worker, the sender and the scheduler's sweeps
run in a second process (``[worker] separate_process``, see :mod:`postdesk.runtime.processing`) so
that processing never holds the interpreter lock the SMTP edge needs; with the setting off they
are threads of this process. On PostgreSQL, ``[worker] processes`` runs more worker processes
beside it, for the cores a single interpreter cannot use. Parts wake each other through events
(a stored mail wakes the worker, a queued notification wakes the sender), so nothing waits for
a poll interval. On
SIGTERM the server stops accepting (new sessions are refused), in-flight mails finish their
commit, the worker and sender finish their current mail, and the process exits 0.

The SMTP address is taken first: a port in use ends ``serve`` at once (exit 1, one line),
before any child or thread has started. Each long-lived thread is supervised
(:mod:`postdesk.supervision`): started again when it dies, or the process ends with exit 70
when it keeps dying (:mod:`postdesk.runtime.parts`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from postdesk.config import startup_warnings
from postdesk.gateway.intake import GroupCommitter
from postdesk.gateway.smtp import SmtpGateway
from postdesk.runtime import CannotListen
from postdesk.runtime.app import App
from postdesk.runtime.parts import Parts, freeze_startup_heap
from postdesk.store.priority import WritePriority

log = logging.getLogger("postdesk.serve")


class Services:
    """The long-running parts of the ``serve`` process, started and stopped together."""

    def __init__(self, app: App, *, smtp: bool = True, worker: bool = True,
                 sender: bool = True, scheduler: bool = True) -> None:
        self.app = app
        self.stop_event = threading.Event()
        self.worker_wake = threading.Event()
        self.local: Parts | None = None  # worker, sender, scheduler as threads of this process
        self.want = {"smtp": smtp, "worker": worker, "sender": sender,
                     "scheduler": scheduler and app.settings.scheduler.enabled}
        self.gateway: SmtpGateway | None = None
        self.committer: GroupCommitter | None = None
        self.pollers: list = []
        self.children: list = []
        self.priority = None

    def start_processing(self) -> None:
        """Worker, sender and scheduler: in a child process, or as threads of this one."""
        parts = {name: self.want[name] for name in ("worker", "sender", "scheduler")}
        if not any(parts.values()):
            return
        if self.app.settings.worker.separate_process:
            from postdesk.runtime.processing import ProcessingChild  # noqa: PLC0415

            if parts["sender"]:
                self.app.sender()  # the outbound folder or relay settings fail here, at start

            # More worker processes ([worker] processes, PostgreSQL) share the queue. Each
            # has its sender, woken by its own worker's notifications (senders claim their
            # rows too); the scheduler runs in the first only.
            count = self.app.settings.worker.processes if parts["worker"] else 1
            self.children = [ProcessingChild(self.app.settings, worker=parts["worker"],
                                             sender=parts["sender"],
                                             scheduler=parts["scheduler"] and n == 0)
                             for n in range(count)]
            self.worker_wake = _Ringer(self._wake_children)
            self.priority = self.children[0].priority
            for child in self.children:
                child.start()
        else:
            self.priority = WritePriority()
            self.start_threads()

    def _wake_children(self) -> None:
        for child in self.children:
            child.wake_worker()

    def start_threads(self) -> None:
        self.local = Parts(self.app, worker=self.want["worker"], sender=self.want["sender"],
                           scheduler=self.want["scheduler"], stop_event=self.stop_event,
                           worker_wake=self.worker_wake, priority=self.priority)
        self.local.start()

    def start_pollers(self) -> None:
        """One IMAP poller per [[imap]] mailbox, each in its own thread, each under a lease."""
        if not self.app.settings.imap:
            return
        from postdesk.gateway.imap_poller import MailboxPoller  # noqa: PLC0415
        from postdesk.store.leases import StoreCursors, StoreLeases  # noqa: PLC0415

        intake = self.app.intake(on_stored=self.worker_wake.set, priority=self.priority)
        for box in self.app.settings.imap:
            poller = MailboxPoller(box, intake, StoreCursors(self.app.db), StoreLeases(self.app.db))
            poller.start()
            self.pollers.append(poller)

    async def bind_smtp(self) -> None:
        """Take the SMTP address before anything else starts; raises :class:`CannotListen`."""
        settings = self.app.settings
        host, port = settings.listen_host_port
        self.gateway = SmtpGateway(host=host, port=port, accept=self._accept,
                                   domains=settings.desk.domains, lmtp=settings.smtp.lmtp,
                                   max_message_bytes=settings.smtp.max_message_bytes,
                                   max_bytes_in_flight=settings.smtp.max_bytes_in_flight,
                                   max_connections=settings.smtp.max_connections,
                                   hostname=settings.smtp.hostname or None)
        try:
            await self.gateway.bind()
        except OSError as exc:
            self.gateway = None
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CannotListen(f"cannot listen on {settings.smtp.listen}: {reason}") from exc

    def _accept(self, raw, envelope):
        return self.committer(raw, envelope)

    async def start_smtp(self) -> None:
        """Start the group commit, then accept connections on the address ``bind_smtp`` took."""
        settings = self.app.settings
        intake = self.app.intake(on_stored=self.worker_wake.set, priority=self.priority)
        writers = 1 if self.app.db.is_sqlite else settings.smtp.store_writers
        self.committer = GroupCommitter(intake, timeout=settings.smtp.store_timeout,
                                        writers=writers)
        self.committer.start()
        if self.gateway is None:
            await self.bind_smtp()
        await self.gateway.start()
        host = settings.listen_host_port[0]
        log.info("listening for %s on %s:%s (domains: %s)", "LMTP" if settings.smtp.lmtp
                 else "SMTP", host, self.gateway.port, ", ".join(settings.desk.domains))

    async def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        if self.committer is not None:
            self.committer.stop()
        # Together: each may take its grace period to finish its mail.
        await asyncio.gather(*(asyncio.to_thread(child.stop) for child in self.children))
        self.stop_event.set()
        if self.local is not None:
            await asyncio.to_thread(self.local.stop)


def start_checkpointer(db):
    """On SQLite, WAL checkpoints leave the commits of ``serve``'s two processes for a thread
    of this one (see :mod:`postdesk.store.checkpoints`). None on PostgreSQL."""
    if not db.sqlite_path:
        return None
    from postdesk.store.checkpoints import Checkpointer  # noqa: PLC0415

    db.leave_checkpoints_to_a_thread()
    checkpointer = Checkpointer(db.sqlite_path)
    checkpointer.start()
    return checkpointer


class _Ringer:
    """What the edge's intake calls when a mail is stored: the children's doorbells."""

    def __init__(self, ring) -> None:
        self.set = ring


def bind_metrics(app: App, services: Services):
    """``[metrics] listen``: take its address now (raises :class:`CannotListen`); None if off."""
    from postdesk.runtime.metrics_http import Health, bind_server, registry_for  # noqa: PLC0415

    listen = app.settings.metrics.listen
    if not listen:
        return None
    health = Health(app.db)
    if services.want["smtp"]:
        health.add("smtp", lambda: services.gateway is not None and services.gateway.serving())
    health.add("processing", lambda: all(child.alive() for child in services.children))
    return bind_server(listen, health, registry_for(app.db))


async def serve(app: App, *, smtp: bool = True, worker: bool = True, sender: bool = True,
                scheduler: bool = True) -> None:
    """Run until SIGTERM/SIGINT; with ``[metrics] listen``, the processes share a folder of
    counters that lasts as long as this call."""
    if not app.settings.metrics.listen:
        await _serve(app, smtp=smtp, worker=worker, sender=sender, scheduler=scheduler)
        return
    from postdesk.runtime.metrics_http import multiprocess_folder  # noqa: PLC0415

    with multiprocess_folder():
        await _serve(app, smtp=smtp, worker=worker, sender=sender, scheduler=scheduler)


async def _serve(app: App, *, smtp: bool, worker: bool, sender: bool, scheduler: bool) -> None:
    for warning in startup_warnings(app.settings):
        log.warning("%s", warning)
    # Handlers first: a SIGTERM while the parts start stops them once they have started,
    # instead of killing the process half-way.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    services = Services(app, smtp=smtp, worker=worker, sender=sender, scheduler=scheduler)
    if smtp:
        await services.bind_smtp()  # a port in use ends here, before any child is started
    checkpointer = exporter = None
    try:
        exporter = bind_metrics(app, services)
        checkpointer = start_checkpointer(app.db)
        services.start_processing()
        services.start_pollers()
        if smtp:
            await services.start_smtp()
        if exporter is not None:
            exporter.start()
        freeze_startup_heap()
        await stopping.wait()
        log.info("stopping")
    finally:  # also when a part failed to start: no child goes on working without us
        await services.stop()
        if checkpointer is not None:
            checkpointer.stop()
        if exporter is not None:
            exporter.stop()
    log.info("stopped")
