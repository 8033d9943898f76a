"""Each long-lived part of a real ``postdesk serve`` is broken, and mail flows again.

The parts are broken from inside through their fault points (``POSTDESK_TEST_FAULTS``, see
``postdesk.supervision``): the intake's writer after a commit and before it answers (as a late
commit once killed it), the worker and the sender after a batch, the scheduler as it starts,
the WAL checkpointer after a round. A supervised part is started again and the next mail goes
through; a part that keeps dying ends the process with exit 70 and one clear line, and a
restarted ``serve`` processes what was stored. ``serve`` on a port in use exits at once and
leaves no process behind.
"""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.faults.support import POSTDESK, Serve, Store, desk_config, free_port, wait_until
from tests.helpers import make_mail, outbound_mails

pytestmark = pytest.mark.timeout(180)

RCPT = ["support@desk.test"]
FAST = "[worker]\npoll_seconds = 0.2\n[scheduler]\ninterval_seconds = 1\n"
RESTART_PAUSE = "POSTDESK_TEST_RESTART_PAUSE"


def send(port: int, raw: bytes, sender: str = "customer@example.com") -> int:
    """One mail over SMTP; the reply code at the end of DATA."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail(sender, RCPT, raw)
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code
    except (OSError, smtplib.SMTPServerDisconnected):
        return 0
    return 250


def send_until_accepted(serve: Serve, raw: bytes, sender: str, tries: int = 20) -> list[int]:
    """What an MTA does: send again after a 4xx until the desk says 250."""
    codes = []
    while len(codes) < tries:
        codes.append(send(serve.port, raw, sender))
        if codes[-1] == 250:
            return codes
        time.sleep(0.5)
    raise AssertionError(f"never accepted: {codes}\n{serve.log_text()[-4000:]}")


def acknowledged(serve: Serve, count: int) -> None:
    wait_until(lambda: len(outbound_mails(serve.folder / "outbound")) >= count, 60,
               f"{count} acknowledgements", log=serve.log)


def marked_processes(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (the serve and its children)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def faulty_serve(tmp_path: Path, faults: str, extra: str = FAST, **env: str) -> Serve:
    """A ``serve`` on SQLite whose named fault points fail; its parts restart after 0.05 s, then
    0.1, 0.2... instead of 1, 2, 4... (``POSTDESK_TEST_RESTART_PAUSE``, postdesk.supervision)."""
    serve = Serve(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", extra,
                  env={"POSTDESK_TEST_FAULTS": faults, RESTART_PAUSE: "0.05", **env})
    serve.run("init")
    return serve


def test_a_broken_intake_writer_is_started_again_and_the_retry_is_stored_once(tmp_path):
    serve = faulty_serve(tmp_path, "intake-writer", POSTDESK_SMTP__STORE_TIMEOUT_SECONDS="2")
    store = Store(f"sqlite:///{tmp_path / 'postdesk.db'}")
    first = make_mail(sender="ann@example.com", message_id="<writer-1@example.com>")
    second = make_mail(sender="bob@example.com", message_id="<writer-2@example.com>")
    try:
        serve.start()
        codes = send_until_accepted(serve, first, "ann@example.com")
        assert codes[0] == 451 and codes[-1] == 250, codes  # stored, then the writer died
        assert send(serve.port, second, "bob@example.com") == 250
        acknowledged(serve, 2)
        wait_until(lambda: store.unfinished() == 0, 30, "the mails to be processed")
        log = serve.log_text()
        assert "intake-writer died (InjectedFault" in log
        assert "intake-writer started again (restart 1)" in log
        assert serve.running
        # The commit that died unanswered kept the mail; the sender's retry was a copy.
        assert store.inbound_statuses() == {"processed": 2, "discarded": 1}
        assert store.incoming_messages() == {"<writer-1@example.com>": 1,
                                             "<writer-2@example.com>": 1}
    finally:
        serve.kill()
        store.close()


@pytest.mark.parametrize("part", ["worker", "sender"])
def test_a_broken_worker_or_sender_is_started_again_and_mail_flows(tmp_path, part):
    serve = faulty_serve(tmp_path, part)
    try:
        serve.start()
        assert send(serve.port, make_mail(sender="ann@example.com"), "ann@example.com") == 250
        acknowledged(serve, 1)
        wait_until(lambda: f"{part} started again (restart 1)" in serve.log_text(), 30,
                   f"the {part} to start again", log=serve.log)
        assert send(serve.port, make_mail(sender="bob@example.com"), "bob@example.com") == 250
        acknowledged(serve, 2)
        assert f"{part} died (InjectedFault" in serve.log_text()
    finally:
        serve.kill()


@pytest.mark.parametrize("part", ["scheduler", "checkpointer"])
def test_a_broken_scheduler_or_checkpointer_is_started_again(tmp_path, part):
    serve = faulty_serve(tmp_path, part)
    try:
        serve.start()
        wait_until(lambda: f"{part} started again (restart 1)" in serve.log_text(), 30,
                   f"the {part} to start again", log=serve.log)
        assert send(serve.port, make_mail(sender="ann@example.com"), "ann@example.com") == 250
        acknowledged(serve, 1)
        assert f"{part} died (InjectedFault" in serve.log_text()
        assert serve.stop() == 0
    finally:
        serve.kill()


def test_a_part_that_keeps_dying_ends_serve_with_exit_70_and_a_restart_catches_up(tmp_path):
    mark = uuid.uuid4().hex
    serve = faulty_serve(tmp_path, "intake-writer:always", POSTDESK_SMTP__STORE_TIMEOUT_SECONDS="1",
                         POSTDESK_TEST_MARK=mark)
    mails = [make_mail(sender=f"c{n}@example.com", message_id=f"<dying-{n}@example.com>")
             for n in range(30)]
    try:
        serve.start()
        sent = 0
        while serve.running and sent < len(mails):
            assert send(serve.port, mails[sent], f"c{sent}@example.com") in (451, 0)
            sent += 1
        code = serve.proc.wait(timeout=60)
        log = serve.log_text()
        assert code == 70, log[-4000:]
        assert "intake-writer died 5 times within 300 s; stopping the process (exit 70)" in log
        wait_until(lambda: not marked_processes(mark), 30, "the processing child to stop")

        serve.env.pop("POSTDESK_TEST_FAULTS")  # what systemd does next: start it again
        serve.start()
        store = Store(f"sqlite:///{tmp_path / 'postdesk.db'}")
        try:
            # Processed is not yet acknowledged: the first run's sender may have stopped with
            # acknowledgements still queued, which this run's sender delivers after start-up.
            wait_until(lambda: store.unfinished() == 0 and store.scalar(
                "SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0, 60,
                "the stored mails to be processed and acknowledged", log=serve.log)
            stored = store.scalar("SELECT count(*) FROM inbound")
            assert stored >= 5  # each death came after a commit: those mails were kept
            assert len(outbound_mails(tmp_path / "outbound")) == stored
        finally:
            store.close()
        assert serve.stop() == 0
    finally:
        serve.kill()


def test_serve_on_a_port_in_use_exits_at_once_and_leaves_no_process(tmp_path):
    mark = uuid.uuid4().hex
    port = free_port()
    config = desk_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", port=port)
    env = {**os.environ, "POSTDESK_TEST_MARK": mark}
    subprocess.run([*POSTDESK, "--config", str(config), "init"], check=True, env=env,
                   capture_output=True, timeout=60)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        try:
            result = subprocess.run([*POSTDESK, "--config", str(config), "serve"], env=env,
                                    capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit on a port in use")
        finally:
            leftovers = marked_processes(mark)
            for pid in leftovers:
                os.kill(pid, 9)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1, lines
    assert lines[-1] == (f"postdesk: cannot listen on 127.0.0.1:{port}: Address already in use "
                         "(change [smtp] listen or stop the other server)"), lines
    assert "Traceback" not in result.stderr.decode()
    assert leftovers == []
    assert "processing process" not in result.stderr.decode()  # no child was ever started


@pytest.mark.dovecot
def test_a_broken_imap_poller_is_started_again_and_mail_flows(tmp_path):
    from tests.dovecot import PASSWORD, Dovecot

    dovecot = Dovecot().start()  # skips when dovecot-imapd is not installed
    user = f"shared{time.monotonic_ns()}"
    mailbox = (f'[[imap]]\nname = "shared"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
               f'security = "none"\nusername = "{user}"\npassword_env = "PD_TEST_IMAP_PASSWORD"\n'
               'idle = false\npoll_seconds = 1\n')
    serve = faulty_serve(tmp_path, "imap", FAST + mailbox, PD_TEST_IMAP_PASSWORD=PASSWORD)
    try:
        dovecot.deliver(user, "INBOX", make_mail(sender="ann@example.com"))
        serve.start()
        acknowledged(serve, 1)
        wait_until(lambda: "imap-shared started again (restart 1)" in serve.log_text(), 30,
                   "the poller to start again", log=serve.log)
        dovecot.deliver(user, "INBOX", make_mail(sender="bob@example.com"))
        acknowledged(serve, 2)
        assert "imap-shared died (InjectedFault" in serve.log_text()
    finally:
        serve.kill()
        dovecot.cleanup()


@pytest.mark.parametrize(("value", "pause"), [(None, 1.0), ("", 1.0), ("0.05", 0.05), ("2", 2.0),
                                               ("0", 1.0), ("-1", 1.0), ("61", 1.0),
                                               ("soon", 1.0), ("nan", 1.0)])
def test_the_restart_pause_these_tests_shorten_stays_1_s_unless_a_test_sets_it(value, pause):
    """``POSTDESK_TEST_RESTART_PAUSE`` (read once, at import) moves only the first pause; a
    value that is not a positive number of seconds up to a minute leaves the 1 s of production."""
    from postdesk import supervision

    assert supervision._first_pause(value) == pause  # noqa: SLF001 - the knob's parser
    assert supervision.MAX_PAUSE == 60.0
