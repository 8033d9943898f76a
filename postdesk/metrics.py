"""What the desk counts for ``GET /metrics``: one named function per event, the only module that
creates a Prometheus metric.

The edge, the worker, the sender, the sweeps and the notifier call these functions; the
counters live in prometheus_client, created on first use (not at import): ``serve`` first sets
``PROMETHEUS_MULTIPROC_DIR`` when ``[metrics] listen`` is set, and prometheus_client reads it
once, when it is imported, to choose between in-memory values and the files that the
processing child shares with the edge. Without ``[metrics]`` the counters stay in memory and
cost a lock and an addition each. Labels take a small, fixed set of values (an edge, an SMTP
code, an outcome, a failure class, a template key, a part's name), never an address or an id.

Each supervised part's state is kept as ``postdesk_part_up{part}`` (1 running, 0 dead or
waiting to be started again), which ``/healthz`` reads, across processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import SimpleNamespace

from postdesk import supervision

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
OUTCOMES = ("ticket", "reply", "duplicate", "quarantined", "automatic")
DEAD_STATES = ("restarting", "given-up")
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_VARIABLE))


_created: list[SimpleNamespace] = []
_creating = threading.Lock()


def families() -> SimpleNamespace:
    """The metrics, created once per process (after ``PROMETHEUS_MULTIPROC_DIR`` is set), by
    whichever thread counts first; the others wait for it."""
    if not _created:
        with _creating:
            if not _created:
                _created.append(_create())
    return _created[0]


def _create() -> SimpleNamespace:
    from prometheus_client import Counter, Gauge, Histogram  # noqa: PLC0415

    return SimpleNamespace(
        received=Counter("postdesk_mails_received", "Mails stored by an edge", ["edge"]),
        refused=Counter("postdesk_smtp_refused", "SMTP/LMTP replies that refused (4xx, 5xx)",
                        ["code"]),
        processed=Counter("postdesk_mails_processed", "Mails the worker finished, by outcome",
                          ["outcome"]),
        processing=Histogram("postdesk_processing_duration_seconds",
                             "Time the worker took for one mail"),
        send_attempts=Counter("postdesk_send_attempts", "Outbound mails handed to the relay"),
        send_failures=Counter("postdesk_send_failures",
                              "Outbound hand-overs that failed, by class", ["class"]),
        sweep_runs=Counter("postdesk_sweep_runs", "Scheduler runs, by result", ["result"]),
        sweep_duration=Histogram("postdesk_sweep_duration_seconds", "Time one sweep run took",
                                 buckets=SWEEP_BUCKETS),
        sweep_actions=Counter("postdesk_sweep_actions", "Actions taken by the sweeps", ["kind"]),
        template_fallbacks=Counter("postdesk_template_fallbacks",
                                   "Admin templates skipped for the packaged default",
                                   ["template"]),
        spoofing=Counter("postdesk_agent_spoofing_attempts",
                         "Mails claiming an agent's address without proof"),
        part_up=Gauge("postdesk_part_up", "1 while a long-lived part runs, 0 while it is dead",
                      ["part"], multiprocess_mode="liveall"),
    )


def edge_of(source: str) -> str:
    """``imap:NAME/FOLDER`` -> ``imap``: the edge, not the mailbox (a bounded label)."""
    return source.partition(":")[0] or "unknown"


def received(source: str, count: int = 1) -> None:
    families().received.labels(edge_of(source)).inc(count)


def refused(reply: str) -> None:
    """Count a reply if it refuses (its first digit is 4 or 5)."""
    code = reply[:3]
    if code.isdigit() and code[0] in "45":
        families().refused.labels(code).inc()


def processed(outcome: str) -> None:
    families().processed.labels(outcome).inc()


def processing_took(seconds: float) -> None:
    families().processing.observe(seconds)


def send_attempt() -> None:
    families().send_attempts.inc()


def send_failure(kind: str) -> None:
    families().send_failures.labels(kind).inc()


def sweep_run(seconds: float, kinds: list[str], failed: bool = False) -> None:
    metrics = families()
    metrics.sweep_runs.labels("failed" if failed else "ok").inc()
    metrics.sweep_duration.observe(seconds)
    for kind in kinds:
        metrics.sweep_actions.labels(kind).inc()


def template_fallback(template: str) -> None:
    _count(lambda: families().template_fallbacks.labels(template).inc())


def spoofing_attempt() -> None:
    _count(lambda: families().spoofing.inc())


_holding = threading.local()


@contextlib.contextmanager
def held():
    """The counts this thread makes inside the block (of a mail's steps: a spoofing attempt, a
    template fallback) are kept in the list it yields instead of counted: the worker calls
    them once the transaction they count is committed, and drops them when it is rolled back
    (its mails then run again and count again)."""
    kept: list = []
    _holding.kept = kept
    try:
        yield kept
    finally:
        _holding.kept = None


def _count(count) -> None:
    kept = getattr(_holding, "kept", None)
    if kept is None:
        count()
    else:
        kept.append(count)


def part_state(name: str, state: str) -> None:
    """Observer of :mod:`postdesk.supervision`: a part asked to stop is not a dead one."""
    if state != "new":
        families().part_up.labels(name).set(0 if state in DEAD_STATES else 1)


supervision.watch_states(part_state)
