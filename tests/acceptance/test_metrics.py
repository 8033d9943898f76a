"""``[metrics] listen``: a real ``postdesk serve`` answers ``/healthz``, ``/readyz`` and
``/metrics``, read as Prometheus and an operator's probe would.

Mail goes in over SMTP and the counters of both processes (the edge's and the processing
child's) move; a part broken through its fault point, or a processing child killed, turns
``/healthz`` to 503 with the dead part named, and it comes back to 200 once restarted. These
run the default ``serve`` with its child; ``/readyz``, which the edge answers from the store,
runs on the SMTP edge alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.test_serve_processes import alive, children
from tests.faults.support import POSTDESK, Serve, desk_config, free_port, wait_until
from tests.helpers import make_mail, outbound_mails, run_cli

pytestmark = pytest.mark.timeout(180)

FAST = "[worker]\npoll_seconds = 0.2\n[scheduler]\ninterval_seconds = 1\n"
EDGE_ONLY = ("--no-worker", "--no-sender", "--no-scheduler")


def metrics_serve(tmp_path: Path, extra: str = FAST, **env: str) -> Serve:
    port = free_port()
    # A killed serve leaves its counters folder in $TMPDIR: let it be the test's.
    serve = Serve(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}",
                  f'{extra}\n[metrics]\nlisten = "127.0.0.1:{port}"\n',
                  env={"TMPDIR": str(tmp_path), **env})
    serve.metrics_port = port
    # in-process: serve.run would start a process for the TMPDIR above, which init needs not
    assert run_cli("--config", str(serve.config), "init", cwd=tmp_path).returncode == 0
    return serve


def get(serve: Serve, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{serve.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def samples(serve: Serve) -> dict[tuple, float]:
    """``{(name, (label, value), ...): value}`` of one scrape."""
    status, text = get(serve, "/metrics")
    assert status == 200, text
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def send(serve: Serve, raw: bytes, rcpt: str = "support@desk.test") -> int:
    try:
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=30) as smtp:
            smtp.sendmail("ann@example.com", [rcpt], raw)
    except smtplib.SMTPRecipientsRefused as exc:
        return next(iter(exc.recipients.values()))[0]
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code
    return 250


def test_the_counters_move_as_mail_flows(tmp_path):
    serve = metrics_serve(tmp_path)
    try:
        serve.start()
        wait_until(lambda: get(serve, "/healthz") == (200, "ok\n"), 30, "healthz 200",
                   log=serve.log)
        assert get(serve, "/readyz") == (200, "ready\n")
        before = samples(serve)
        assert before[("postdesk_store_up",)] == 1
        assert before[("postdesk_inbound_queue_depth", ("status", "received"))] == 0

        mail = make_mail(sender="ann@example.com", message_id="<m1@example.com>")
        assert send(serve, mail) == 250
        assert send(serve, mail) == 250  # the same mail again: a duplicate
        assert send(serve, make_mail(), rcpt="nobody@elsewhere.test") == 550
        wait_until(lambda: outbound_mails(tmp_path / "outbound"), 60, "the acknowledgement",
                   log=serve.log)
        wait_until(lambda: samples(serve).get(
            ("postdesk_mails_processed_total", ("outcome", "duplicate"))) == 1, 60,
            "the duplicate to be counted", log=serve.log)
        wait_until(lambda: samples(serve).get(("postdesk_send_attempts_total",)) == 1, 60,
                   "the acknowledgement to be counted", log=serve.log)
        after = samples(serve)
        assert after[("postdesk_mails_received_total", ("edge", "smtp"))] == 2
        assert after[("postdesk_smtp_refused_total", ("code", "550"))] == 1
        assert after[("postdesk_mails_processed_total", ("outcome", "ticket"))] == 1
        assert after[("postdesk_processing_duration_seconds_count",)] == 2
        assert after[("postdesk_sweep_runs_total", ("result", "ok"))] >= 1
        assert after[("postdesk_inbound_queue_depth", ("status", "received"))] == 0
        assert after[("postdesk_inbound_oldest_age_seconds",)] == 0
        assert after[("postdesk_outbox_depth", ("status", "queued"))] == 0
        assert after[("postdesk_quarantine_size",)] == 0
        assert after[("postdesk_part_up", ("part", "worker"), ("pid", str(
            processing_child(serve))))] == 1
        assert get(serve, "/nothing")[0] == 404
        assert list(tmp_path.glob("postdesk-metrics-*"))
        assert serve.stop() == 0
        assert not list(tmp_path.glob("postdesk-metrics-*"))  # a clean stop removes it
    finally:
        serve.kill()


def processing_child(serve: Serve) -> int:
    [child] = wait_until(lambda: [c for c in children(serve.proc.pid) if alive(c)], 30,
                         "the processing child")
    return child


def test_a_part_that_keeps_dying_turns_healthz_503_with_its_name(tmp_path):
    # Restart pauses of 0.25, 0.5, 1 and 2 s (not 1-8 s): each "dead: scheduler" moment still
    # outlasts the 0.05 s polls below several times over.
    serve = metrics_serve(tmp_path, POSTDESK_TEST_FAULTS="scheduler:always",
                          POSTDESK_TEST_RESTART_PAUSE="0.25")
    try:
        serve.start()
        status, text = wait_until(lambda: _unhealthy(serve, "scheduler"), 60,
                                  "healthz to name the scheduler", every=0.05, log=serve.log)
        assert status == 503 and text.startswith("dead: scheduler (pid "), text
        # After five deaths the child ends (exit 70); until it is back, the edge names it.
        status, text = wait_until(lambda: _unhealthy(serve, "processing"), 60,
                                  "healthz to name the processing child", every=0.05,
                                  log=serve.log)
        assert text == "dead: processing\n"
        assert get(serve, "/readyz") == (200, "ready\n")  # the store is fine
    finally:
        serve.kill()


def test_a_killed_processing_child_turns_healthz_503_until_it_is_back(tmp_path):
    serve = metrics_serve(tmp_path)
    try:
        serve.start()
        wait_until(lambda: get(serve, "/healthz")[0] == 200, 30, "healthz 200", log=serve.log)
        child = processing_child(serve)
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: _unhealthy(serve, "processing"), 30, "healthz to name the child",
                   every=0.02, log=serve.log)
        wait_until(lambda: get(serve, "/healthz") == (200, "ok\n"), 60, "healthz 200 again",
                   log=serve.log)
        assert processing_child(serve) != child
    finally:
        serve.kill()


def _unhealthy(serve: Serve, part: str):
    status, text = get(serve, "/healthz")
    return (status, text) if status == 503 and part in text else None


def test_readyz_is_503_on_a_store_without_the_schema(tmp_path):
    serve = metrics_serve(tmp_path)
    try:
        serve.start(*EDGE_ONLY)  # the edge's exporter reads the schema from the store
        wait_until(lambda: get(serve, "/readyz")[0] == 200, 30, "readyz 200", log=serve.log)
        # serve writes to the same file; wait for its lock rather than fail on it
        with contextlib.closing(sqlite3.connect(tmp_path / "postdesk.db", timeout=30)) as db, db:
            db.execute("UPDATE alembic_version SET version_num = 'old'")
        status, text = get(serve, "/readyz")
        assert status == 503 and text.startswith("the schema is at old, postdesk needs "), text
    finally:
        serve.kill()


def test_a_metrics_port_in_use_ends_serve_with_one_line(tmp_path):
    port = free_port()
    config = desk_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}",
                         f'[metrics]\nlisten = "127.0.0.1:{port}"\n', port=free_port())
    assert run_cli("--config", str(config), "init").returncode == 0
    import socket  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        result = subprocess.run([*POSTDESK, "--config", str(config), "serve"],
                                capture_output=True, timeout=60)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1, lines
    assert lines[-1] == (f"postdesk: cannot listen on 127.0.0.1:{port}: Address already in use "
                         "(change [metrics] listen or stop the other server)"), lines


def test_the_scheduler_daemon_answers_too(tmp_path):
    port = free_port()
    config = desk_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}",
                         f'{FAST}\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    assert run_cli("--config", str(config), "init").returncode == 0
    daemon = subprocess.Popen([*POSTDESK, "--config", str(config), "scheduler"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    probe = SimpleNamespace(metrics_port=port)
    try:
        wait_until(lambda: get(probe, "/metrics")[0] == 200 and samples(probe).get(
            ("postdesk_sweep_runs_total", ("result", "ok"))), 60, "a sweep counted")
        scrape = samples(probe)
        assert scrape[("postdesk_sweep_runs_total", ("result", "ok"))] >= 1
        assert scrape[("postdesk_sweep_duration_seconds_count",)] >= 1
        assert scrape[("postdesk_part_up", ("part", "scheduler"))] == 1
        assert get(probe, "/healthz") == (200, "ok\n")
        assert get(probe, "/readyz") == (200, "ready\n")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, daemon.stderr.read().decode()[-2000:]
