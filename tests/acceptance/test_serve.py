"""Drive the ``postdesk`` command as ops and customers do: init, serve, send with smtplib, read.

Each serve test runs the real ``serve`` in a subprocess on a free loopback port, sends mail
with ``smtplib`` (and swaks when installed), and reads tickets with ``postdesk tickets show
--json`` (in-process, click's runner) and the acknowledgements from the outbound Maildir. A
test runs the lightest ``serve`` that still shows what it is about: the SMTP edge alone
(``--no-worker --no-sender --no-scheduler``) for the edge's answers, one process
(``[worker] separate_process = false``) for mail flow; the processing child itself is tested in
test_serve_processes.py, on the default ``desk`` below. ``ingest`` runs once per store in a real
process, as an MTA runs it; its refusals and the other commands' errors in-process (a process
adds nothing to an exit code and one line on stderr).
"""

from __future__ import annotations

import json
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.faults.support import STARTS_WITHIN, Store
from tests.helpers import make_mail, outbound_mails, run_cli

POSTDESK = [sys.executable, "-m", "postdesk"]
ONE_PROCESS = "[worker]\nseparate_process = false\n"  # worker, sender, scheduler as threads
EDGE_ONLY = ("--no-worker", "--no-sender", "--no-scheduler")
# One process warms its worker up (parser, templates) in a thread while it already listens; a
# child does it before serve listens. Waits for processing get this longer bound on a busy
# machine (a hang guard, not a measure).
PROCESSED = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Desk:
    """A configured postdesk in a folder: run commands, start and kill ``serve``."""

    def __init__(self, folder: Path, db_url: str, extra: str = "") -> None:
        self.folder = folder
        self.port = free_port()
        self.config = write_config(folder, db_url, extra)
        text = self.config.read_text().replace('listen = "127.0.0.1:0"',
                                               f'listen = "127.0.0.1:{self.port}"')
        self.config.write_text(text)
        self.proc: subprocess.Popen | None = None
        self.log = folder / "serve.log"

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            process: bool | None = None):
        """``postdesk ARGS`` on this desk: ``ingest`` in a real process unless ``process`` is
        false, every other command in-process (click's runner)."""
        if process is None:
            process = args[0] == "ingest"
        if process:
            result = subprocess.run([*POSTDESK, "--config", str(self.config), *args],
                                    input=input, capture_output=True, timeout=60, cwd=self.folder)
        else:
            result = run_cli("--config", str(self.config), *args, input=input, cwd=self.folder)
        if check and result.returncode != 0:
            raise AssertionError(f"postdesk {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode()}")
        return result

    def start(self, *flags: str) -> None:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen([*POSTDESK, "--config", str(self.config), "serve", *flags],
                                     stdout=handle, stderr=handle, cwd=self.folder)
        deadline = time.monotonic() + STARTS_WITHIN  # serve's start, then its wait for its child
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.05)
        raise AssertionError("postdesk serve did not start: " + self.log.read_text())

    def kill(self) -> None:
        """Kill a ``serve`` still running (a test's cleanup)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def send(self, raw: bytes, sender: str = "alice@example.com",
             rcpts: tuple[str, ...] = ("support@desk.test",)) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.sendmail(sender, list(rcpts), raw)

    def ticket(self, number: int) -> dict:
        return json.loads(self.run("tickets", "show", str(number), "--json").stdout)

    def tickets(self) -> list[dict]:
        return json.loads(self.run("tickets", "list", "--json").stdout)

    def wait_for(self, predicate, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError("condition not reached; serve log:\n" + self.log.read_text())


@pytest.fixture
def desk(tmp_path, db_url):
    """A desk on the default configuration (serve with its processing child)."""
    desk = Desk(tmp_path, db_url)
    desk.run("init")
    yield desk
    desk.kill()


@pytest.fixture
def one_process_desk(tmp_path, db_url):
    """A desk whose serve runs the worker, sender and scheduler as threads of one process."""
    desk = Desk(tmp_path, db_url, ONE_PROCESS)
    desk.run("init")
    yield desk
    desk.kill()


def test_mail_becomes_ticket_one_with_a_threading_acknowledgement(one_process_desk):
    desk = one_process_desk
    desk.start()
    desk.send(make_mail(message_id="<m1@example.com>", name="Alice"))
    acks = desk.wait_for(lambda: outbound_mails(desk.folder / "outbound"), timeout=PROCESSED)
    ticket = desk.ticket(1)
    assert ticket["ref"] == "#1" and ticket["requester"] == "alice@example.com"
    assert ticket["messages"][0]["threaded_by"] == "new"
    [ack] = acks
    assert "[#1]" in ack["Subject"] and ack["In-Reply-To"] == "<m1@example.com>"
    assert ack["Reply-To"] == "support@desk.test" and ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"] in [m["message_id"] for m in ticket["messages"]]

    desk.send(make_mail(subject="Re: Cannot log in", body="More details.\n",
                        in_reply_to=ack["Message-ID"], message_id="<m2@example.com>"))
    desk.wait_for(lambda: len(desk.ticket(1)["messages"]) == 3, timeout=PROCESSED)
    assert desk.ticket(1)["messages"][2]["threaded_by"] == "references"
    assert desk.stop() == 0
    assert "stopped" in desk.log.read_text()


def _connected(port: int) -> smtplib.SMTP | None:
    """A new SMTP connection, or None while the server still counts the ones just closed."""
    try:
        return smtplib.SMTP("127.0.0.1", port, timeout=10)
    except smtplib.SMTPConnectError:
        return None


def test_smtp_refusals(desk, db_url, monkeypatch):
    monkeypatch.setenv("POSTDESK_SMTP__MAX_CONNECTIONS", "2")
    desk.start(*EDGE_ONLY)  # the edge answers all of these itself
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.com")
        code, text = smtp.rcpt("someone@elsewhere.test")
        assert code == 550 and text.startswith(b"5.1.1")
    big = make_mail(body="x" * 200 + "\n") + b"y" * (26 * 1024 * 1024)
    with pytest.raises(smtplib.SMTPException) as caught:
        desk.send(big)
    assert "552" in str(caught.value)
    store = Store(db_url)
    try:
        assert store.scalar("SELECT count(*) FROM inbound") == 0  # neither mail was stored
    finally:
        store.close()
    held = [desk.wait_for(lambda: _connected(desk.port), timeout=5) for _ in range(2)]
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", desk.port, timeout=10)
    assert refused.value.smtp_code == 421
    assert refused.value.smtp_error == b"4.3.2 Too many connections, try again later"
    for smtp in held:
        smtp.quit()


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks is not installed")
def test_swaks_is_an_independent_client(one_process_desk):
    desk = one_process_desk
    desk.start()
    result = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(desk.port),
                             "--from", "carol@example.org", "--to", "support@desk.test",
                             "--header", "Subject: Facture en double",
                             "--body", "Bonjour, j'ai reçu deux factures pour le même mois."],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode()
    desk.wait_for(lambda: desk.tickets(), timeout=PROCESSED)
    assert desk.ticket(1)["requester"] == "carol@example.org"


def test_killed_after_250_before_processing_is_processed_once_after_restart(one_process_desk):
    desk = one_process_desk
    desk.start(*EDGE_ONLY)  # accepts and stores; nothing processes
    desk.send(make_mail(message_id="<k1@example.com>"))  # 250 received
    desk.stop(signal.SIGKILL)
    assert desk.tickets() == []
    desk.start()
    desk.wait_for(lambda: desk.tickets(), timeout=PROCESSED)
    # Delivered rows are marked sent up to a second later (MARK_SENT_WITHIN_SECONDS): a kill
    # before that sends the acknowledgement again, by design. Once marked, never again.
    desk.wait_for(lambda: json.loads(desk.run("outbox", "list", "--status", "sent",
                                              "--json").stdout), timeout=PROCESSED)
    desk.stop(signal.SIGKILL)
    desk.start()  # a second restart must not process it again
    # A later mail, once processed and acknowledged, shows the restarted worker and sender
    # have been through their queues, where the first mail and its acknowledgement come first.
    desk.send(make_mail(sender="bob@example.com", subject="Another question",
                        message_id="<k2@example.com>"), sender="bob@example.com")
    desk.wait_for(lambda: any(m["In-Reply-To"] == "<k2@example.com>"
                              for m in outbound_mails(desk.folder / "outbound")),
                  timeout=PROCESSED)
    assert sorted(t["requester"] for t in desk.tickets()) == ["alice@example.com",
                                                              "bob@example.com"]
    assert sorted(m["In-Reply-To"] for m in outbound_mails(desk.folder / "outbound")) == [
        "<k1@example.com>", "<k2@example.com>"]


def test_ingest_exit_codes(desk, tmp_path):
    ok = desk.run("ingest", input=make_mail(), check=False)  # a real process, as the MTA's
    assert ok.returncode == 0
    empty = desk.run("ingest", input=b"", check=False, process=False)
    assert empty.returncode == 65 and b"empty message" in empty.stderr
    garbage = desk.run("ingest", input=b"\x00\x01 not a mail at all", check=False,
                       process=False)
    assert garbage.returncode == 65 and b"header" in garbage.stderr
    (tmp_path / "broken").mkdir()
    broken = Desk(tmp_path / "broken", "sqlite:////nonexistent-dir/x.db")
    down = broken.run("ingest", input=make_mail(), check=False,
                      process=False)  # kept by the MTA, as with 75
    assert down.returncode == 78 and b"no folder /nonexistent-dir" in down.stderr
    assert b"Traceback" not in down.stderr
    assert broken.run("init", check=False).returncode == 78


def test_cli_errors_are_one_line(desk):
    missing = desk.run("tickets", "show", "42", check=False)
    assert missing.returncode == 1 and b"no ticket #42" in missing.stderr
    bad = run_cli("--config", "/nonexistent.toml", "tickets", "list")
    assert bad.returncode == 78 and b"does not exist" in bad.stderr
    assert b"Traceback" not in bad.stderr + missing.stderr


def test_env_override_and_init_is_idempotent(desk):
    again = desk.run("init")
    assert b"up to date" in again.stdout
    result = run_cli("--config", str(desk.config), "tickets", "list", cwd=desk.folder,
                     env={"POSTDESK_SMTP__LMTP": "perhaps"})
    assert result.returncode == 78 and b"smtp.lmtp" in result.stderr
