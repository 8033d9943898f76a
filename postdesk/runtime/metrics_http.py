"""``[metrics] listen``: ``/healthz``, ``/readyz`` and ``/metrics`` over HTTP for ``serve`` and
``postdesk scheduler``.

- ``GET /healthz``: 200 while every long-lived part is alive, 503 naming each dead one. A part
  is a supervised thread (:mod:`postdesk.supervision`; its state is the ``postdesk_part_up``
  gauge, shared across processes), the SMTP edge (its server accepts), or a processing child
  (the edge's watch knows whether it runs);
- ``GET /readyz``: 200 when the store answers and its schema is the one this postdesk needs;
  503 with the reason;
- ``GET /metrics``: Prometheus text (prometheus_client). Under ``serve`` the counters of every
  process are read from the multiprocess folder that :func:`multiprocess_folder` owns; the
  store's figures (queue depths, oldest ages, outbox by status, quarantine) are read at scrape
  time by :class:`StoreCollector`, one bounded query each (:mod:`postdesk.store.gauges`).

The server is wsgiref's, one thread per request, in a supervised thread. Any other path is 404,
any other method 405. The address is taken before anything else starts, like the SMTP one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import socket
import socketserver
import tempfile
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from postdesk import metrics
from postdesk.runtime import CannotListen
from postdesk.store.clock import utcnow
from postdesk.supervision import supervise

log = logging.getLogger("postdesk.metrics")


@contextlib.contextmanager
def multiprocess_folder() -> Iterator[str]:
    """A fresh folder for the counters of ``serve``'s processes, set as
    ``PROMETHEUS_MULTIPROC_DIR`` (children inherit it) and removed at the end."""
    folder = tempfile.mkdtemp(prefix="postdesk-metrics-")
    os.environ[metrics.MULTIPROCESS_VARIABLE] = folder
    try:
        yield folder
    finally:
        os.environ.pop(metrics.MULTIPROCESS_VARIABLE, None)
        shutil.rmtree(folder, ignore_errors=True)


def process_gone(pid: int) -> None:
    """Forget the gauges of a process that ended (its counters stay counted)."""
    if metrics.multiprocess():
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(pid)


class StoreCollector:
    """The store's figures, read when Prometheus scrapes; ``postdesk_store_up`` 0 if it fails."""

    def __init__(self, db, clock: Callable = utcnow) -> None:
        self.db = db
        self.clock = clock

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        from postdesk.store import gauges  # noqa: PLC0415

        up = GaugeMetricFamily("postdesk_store_up", "1 when the store answered this scrape")
        try:
            with self.db.reader() as session:
                found = gauges.read(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even when the store does not
            log.warning("metrics: the store did not answer: %s", str(exc).splitlines()[0][:300])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self.families(found, self.clock())

    @staticmethod
    def families(found, now):
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        queue = GaugeMetricFamily("postdesk_inbound_queue_depth",
                                  "Stored mails not yet processed, by status", labels=["status"])
        for status, count in found.inbound.items():
            queue.add_metric([status], count)
        outbox = GaugeMetricFamily("postdesk_outbox_depth", "Outbound mails by status",
                                   labels=["status"])
        for status, count in found.outbox.items():
            outbox.add_metric([status], count)
        return [
            queue,
            GaugeMetricFamily("postdesk_inbound_oldest_age_seconds",
                              "Age of the oldest mail not yet processed (0: none)",
                              value=found.age(found.oldest_inbound, now)),
            GaugeMetricFamily("postdesk_quarantine_size", "Mails in quarantine",
                              value=found.quarantined),
            outbox,
            GaugeMetricFamily("postdesk_outbox_oldest_queued_age_seconds",
                              "Age of the oldest queued outbound mail (0: none)",
                              value=found.age(found.oldest_queued, now)),
        ]


class Health:
    """What ``/healthz`` and ``/readyz`` ask: named checks of this process, the part gauges."""

    def __init__(self, db) -> None:
        self.db = db
        self.checks: list[tuple[str, Callable[[], bool]]] = []

    def add(self, name: str, alive: Callable[[], bool]) -> None:
        self.checks.append((name, alive))

    def dead(self) -> list[str]:
        down = [name for name, alive in self.checks if not alive()]
        return down + dead_parts(part_samples())

    def not_ready(self) -> str | None:
        from postdesk.store import migrate  # noqa: PLC0415

        try:
            current = migrate.current_revision(self.db)
        except Exception as exc:  # noqa: BLE001 - the answer is the reason
            return f"the store does not answer: {str(exc).splitlines()[0][:300]}"
        head = _head_revision()
        if current != head:
            return f"the schema is at {current or 'nothing'}, postdesk needs {head}"
        return None


@functools.cache
def _head_revision() -> str | None:
    from postdesk.store import migrate  # noqa: PLC0415

    return migrate.head_revision()


def part_samples() -> list:
    """The ``postdesk_part_up`` samples of every process (or of this one)."""
    if metrics.multiprocess():
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        families = MultiProcessCollector(None).collect()
    else:
        families = metrics.families().part_up.collect()
    return [s for family in families if family.name == "postdesk_part_up"
            for s in family.samples]


def dead_parts(samples) -> list[str]:
    """``worker (pid 12)`` for each sample at 0; the pid when the sample has one. A sample of
    a process that has ended is left out: its parts ended with it, and ``serve`` names the
    process itself ("processing") from the moment it has ended until it is started again,
    while its samples are forgotten only a moment later (``process_gone``)."""
    dead = []
    for sample in samples:
        pid = sample.labels.get("pid")
        if sample.value == 0 and (not pid or _runs(pid)):
            dead.append(sample.labels["part"] + (f" (pid {pid})" if pid else ""))
    return sorted(dead)


def _runs(pid: str) -> bool:
    """Whether process ``pid`` exists (an ended child of ``serve`` is reaped as soon as it is
    found ended, so it no longer does)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def registry_for(db):
    """The registry ``/metrics`` shows: every process's counters, and the store's figures."""
    from prometheus_client import REGISTRY, CollectorRegistry  # noqa: PLC0415

    if metrics.multiprocess():
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        metrics.families()
        registry = REGISTRY
    registry.register(StoreCollector(db))
    return registry


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # scrapes every few seconds: not worth a line
        pass


class _Threading(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Threading6(_Threading):
    address_family = socket.AF_INET6


class HealthApp:
    """The WSGI application: three paths."""

    def __init__(self, health: Health, registry) -> None:
        from prometheus_client import make_wsgi_app  # noqa: PLC0415

        self.health = health
        self.metrics = make_wsgi_app(registry)

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path not in ("/healthz", "/readyz", "/metrics"):
            return _answer(start_response, "404 Not Found", "not found: try /healthz, "
                           "/readyz or /metrics")
        if method not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", "use GET")
        if path == "/metrics":
            return self.metrics(environ, start_response)
        if path == "/healthz":
            dead = self.health.dead()
            if dead:
                return _answer(start_response, "503 Service Unavailable",
                               "dead: " + ", ".join(dead))
            return _answer(start_response, "200 OK", "ok")
        reason = self.health.not_ready()
        if reason:
            return _answer(start_response, "503 Service Unavailable", reason)
        return _answer(start_response, "200 OK", "ready")


def _answer(start_response, status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


class MetricsServer:
    """``bind`` takes the address (OSError if it cannot), ``start`` answers, ``stop`` ends."""

    def __init__(self, listen: str, health: Health, registry) -> None:
        self.listen = listen
        self.app = HealthApp(health, registry)
        self._server = None
        self._part = None

    def bind(self) -> None:
        host, _, port = self.listen.rpartition(":")
        server_class = _Threading6 if ":" in host else _Threading
        self._server = make_server(host.strip("[]"), int(port), self.app,
                                   server_class=server_class, handler_class=_Quiet)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        if self._server is None:
            self.bind()
        self._part = supervise("metrics-http", self._server.serve_forever,
                               stopping=lambda: self._stopping)
        log.info("metrics on http://%s/metrics (and /healthz, /readyz)", self.listen)

    _stopping = False

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping = True
        if self._part is not None:
            self._server.shutdown()
            self._part.join(timeout=5)
        self._server.server_close()
        self._server = None


def bind_server(listen: str, health: Health, registry) -> MetricsServer:
    """A server that has taken ``listen`` (not yet answering); raises
    :class:`~postdesk.runtime.CannotListen` when the address cannot be taken."""
    server = MetricsServer(listen, health, registry)
    try:
        server.bind()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CannotListen(f"cannot listen on {listen}: {reason}", "metrics") from exc
    return server


@contextlib.contextmanager
def metrics_for(app) -> Iterator[None]:
    """``postdesk scheduler``'s metrics (one process: no shared folder), if configured; a
    taken address raises :class:`~postdesk.runtime.CannotListen` before anything runs."""
    listen = app.settings.metrics.listen
    if not listen:
        yield
        return
    server = bind_server(listen, Health(app.db), registry_for(app.db))
    server.start()
    try:
        yield
    finally:
        server.stop()
