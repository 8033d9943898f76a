"""Dependencies failing under a running desk: the database, the outbound relay, the blob disk.

Each test starts the real ``postdesk serve``, breaks one thing it depends on, checks that
the desk says "try again later" quickly and precisely (SMTP 451/452, ``ingest`` exit 75 with
one line, notifications kept in the outbox with the error), then repairs it and checks that
the same work goes through without restarting postdesk and without doing anything twice.
The database outage uses a private PostgreSQL cluster (``conftest.py``), never the shared one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import smtplib
import subprocess
import threading
import time

import pytest

from tests.faults.support import Serve, Sink, Store, figures, free_port, wait_until
from tests.helpers import make_mail

RCPT = ["support@desk.test"]


def smtp_send(port: int, raw: bytes, sender: str = "customer@example.com") -> tuple[int, str, float]:
    """Send one mail; return (reply code at end of DATA, its text, seconds it took)."""
    started = time.monotonic()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail(sender, RCPT, raw)
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode(errors="replace"), time.monotonic() - started
    return 250, "", time.monotonic() - started


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.decode(errors="replace").splitlines() if line.strip()]


def refusal_of_a_big_mail(serve: Serve, raw: bytes, sender: str) -> dict:
    """What the desk answers to ``raw`` sent over SMTP, then piped to ``postdesk ingest``."""
    code, text, seconds = smtp_send(serve.port, raw, sender)
    piped = serve.run("ingest", input=raw, check=False)
    return {"SMTP reply": f"{code} {text}", "seconds": round(seconds, 2),
            "ingest exit": piped.returncode, "ingest stderr": stderr_lines(piped)}


def test_database_down_answers_451_and_recovers_without_restart(tmp_path, private_pg):
    cluster, url = private_pg
    serve = Serve(tmp_path, url, "[worker]\npoll_seconds = 0.2\n")
    store = Store(url)
    first = make_mail(sender="ann@example.com", message_id="<before-outage@example.com>")
    during = make_mail(sender="bob@example.com", message_id="<during-outage@example.com>",
                       subject="Sent while the database was down")
    piped = make_mail(sender="cy@example.com", message_id="<piped-outage@example.com>")
    (tmp_path / "piped.eml").write_bytes(piped)
    try:
        serve.start()
        pid = serve.proc.pid
        assert smtp_send(serve.port, first)[0] == 250
        wait_until(lambda: store.scalar("SELECT count(*) FROM ticket") == 1, 20,
                   "the first mail's ticket", log=serve.log)

        cluster.stop()
        code, text, seconds = smtp_send(serve.port, during, "bob@example.com")
        ingest = serve.run("ingest", input=piped, check=False)
        lines = stderr_lines(ingest)
        down = {"SMTP reply": f"{code} {text}", "SMTP seconds": round(seconds, 2),
                "ingest exit": ingest.returncode, "ingest stderr": lines}
        print(figures("database stopped", down))
        assert code == 451 and text.startswith("4.3.0"), down
        assert seconds < 5, down
        assert ingest.returncode == 75, down
        assert len(lines) == 1 and "temporary failure" in lines[0], down
        assert b"Traceback" not in ingest.stderr, down

        cluster.start()
        replies = []
        for _ in range(20):  # the MTA's retries; the pool must reconnect by itself
            replies.append(smtp_send(serve.port, during, "bob@example.com")[0])
            if replies[-1] == 250:
                break
            time.sleep(0.25)
        again = serve.run("ingest", input=piped, check=False)
        wait_until(lambda: store.unfinished() == 0 and
                   store.scalar("SELECT count(*) FROM ticket") == 3, 30,
                   "the mails sent during the outage to be processed", log=serve.log)
        messages = store.incoming_messages()
        up = {"SMTP replies after restart": replies, "ingest exit": again.returncode,
              "serve pid unchanged": serve.proc.pid == pid and serve.running,
              "messages": dict(messages), "inbound": dict(store.inbound_statuses())}
        print(figures("database started again", up))
        assert replies[-1] == 250 and again.returncode == 0, up
        assert up["serve pid unchanged"], up
        assert all(messages[m] == 1 for m in ("<before-outage@example.com>",
                                              "<during-outage@example.com>",
                                              "<piped-outage@example.com>")), up
        assert set(store.inbound_statuses()) == {"processed"}, up
    finally:
        serve.kill()
        store.close()


def test_hung_database_answers_451_within_seconds(tmp_path, private_pg):
    cluster, url = private_pg
    serve = Serve(tmp_path, url, "[worker]\npoll_seconds = 0.2\n",
                  env={"POSTDESK_SMTP__STORE_TIMEOUT_SECONDS": "3"})
    reply: dict = {}

    def send() -> None:
        reply["result"] = smtp_send(serve.port, make_mail(message_id="<hung@example.com>"))

    try:
        serve.start("--no-worker", "--no-sender")
        assert smtp_send(serve.port, make_mail(sender="warm@example.com"), "warm@example.com")[0] == 250
        frozen = cluster.freeze()  # postmaster and backends stop answering
        try:
            client = threading.Thread(target=send, daemon=True)
            client.start()
            client.join(timeout=5)
            answered_in_time = "result" in reply
        finally:
            cluster.thaw(frozen)
        client.join(timeout=30)
        result = {"answered within 5 s": answered_in_time, "reply": reply.get("result")}
        print(figures("database hung (SIGSTOP)", result))
        assert answered_in_time, result
        code, _, seconds = reply["result"]
        assert code == 451 and seconds < 5, result
    finally:
        serve.kill()


def listing_between_tries(serve: Serve, count: int) -> list[dict] | None:
    """``outbox list`` once each of ``count`` rows was tried twice and the sender holds none:
    at each try it holds the rows ('sending') for a moment, and a listing read then shows them
    so (seen once in 150 listings on a loaded machine)."""
    rows = json.loads(serve.run("outbox", "list", "--json").stdout)
    between = len(rows) == count and all(r["status"] != "sending" and r["attempts"] >= 2
                                         for r in rows)
    return rows if between else None


def test_relay_down_keeps_notifications_queued_then_sends_each_once(tmp_path):
    relay_port = free_port()
    db_url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    serve = Serve(tmp_path, db_url, f'''
[outbound]
transport = "smtp"
host = "127.0.0.1"
port = {relay_port}
timeout_seconds = 5
max_attempts = 100
retry_base_seconds = 0.2
retry_max_seconds = 0.5
poll_seconds = 0.2
''')
    store = Store(db_url)
    sink = Sink(relay_port)
    try:
        serve.run("init")
        serve.start()
        for i in range(3):
            assert smtp_send(serve.port, make_mail(sender=f"c{i}@example.com"), f"c{i}@example.com")[0] == 250
        queued = wait_until(lambda: listing_between_tries(serve, 3), 30,
                            "three notifications retried against the dead relay", log=serve.log)
        print(figures("relay down", {"outbox": [(r["status"], r["attempts"], r["last_error"])
                                                for r in queued]}))
        assert len(queued) == 3
        assert all(r["status"] == "queued" and r["attempts"] >= 1 and r["last_error"] for r in queued)
        assert all("refused" in r["last_error"].lower() for r in queued), queued

        sink.start()
        wait_until(lambda: store.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == 3,
                   20, "the queued notifications to be sent", log=serve.log)
        time.sleep(1.0)  # several more sender polls: nothing may be sent again
        delivered = sink.message_ids()
        expected = {r["message_id"] for r in queued}
        result = {"delivered": dict(delivered), "outbox Message-IDs": sorted(expected),
                  "attempts": sorted(store.rows("SELECT attempts FROM outbox"))}
        print(figures("relay back", result))
        assert set(delivered) == expected, result
        assert all(n == 1 for n in delivered.values()), result
    finally:
        serve.kill()
        sink.stop()
        store.close()


@contextlib.contextmanager
def tiny_disk(folder, size: str):
    """A tmpfs of ``size`` mounted on ``folder`` (needs root; the test is skipped elsewhere)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def tiny_blob_dir(tmp_path):
    """A 1 MB disk for ``[store] blob_dir``."""
    with tiny_disk(tmp_path / "blobs", "1m") as folder:
        yield folder


def test_full_sqlite_disk_refuses_a_big_mail_with_452_and_keeps_nothing(tmp_path):
    """A big mail goes into its SQLite row in place (``large.write_in_place``); when the disk
    fills during that write, the edge must answer as for any full disk and store no part of it."""
    with tiny_disk(tmp_path / "store", "2m") as folder:
        db_url = f"sqlite:///{folder / 'postdesk.db'}"
        serve = Serve(tmp_path, db_url)
        store = Store(db_url)
        big = make_mail(sender="big@example.com", message_id="<big-row@example.com>",
                        body=("y" * 76 + "\n") * 40_000)  # 3 MB: more than the disk holds
        (tmp_path / "big.eml").write_bytes(big)
        try:
            serve.run("init")
            serve.start("--no-worker")
            refused = refusal_of_a_big_mail(serve, big, "big@example.com")
            rows = store.rows("SELECT id FROM inbound")
            result = {**refused, "inbound rows": len(rows),
                      "free bytes": shutil.disk_usage(folder).free}
            print(figures("SQLite disk full", result))
            assert refused["SMTP reply"].startswith("452 4.3.1"), result
            assert refused["ingest exit"] == 75, result
            assert not any("Traceback" in line for line in refused["ingest stderr"]), result
            assert rows == [], result
        finally:
            serve.kill()
            store.close()


def test_full_blob_disk_answers_452_and_writes_nothing(tmp_path, tiny_blob_dir):
    db_url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    serve = Serve(tmp_path, db_url, f'[store]\nblob_dir = "{tiny_blob_dir}"\n')
    store = Store(db_url)
    small = make_mail(sender="small@example.com", message_id="<small@example.com>")
    big = make_mail(sender="big@example.com", message_id="<big@example.com>",
                    body=("x" * 76 + "\n") * 20_000)  # 1.5 MB: more than the disk holds
    (tmp_path / "big.eml").write_bytes(big)
    try:
        serve.run("init")
        serve.start("--no-worker")
        assert smtp_send(serve.port, small, "small@example.com")[0] == 250
        refused = refusal_of_a_big_mail(serve, big, "big@example.com")
        files = sorted(str(p.relative_to(tiny_blob_dir)) for p in tiny_blob_dir.rglob("*")
                       if p.is_file())
        rows = store.rows("SELECT blob_path, sha256 FROM inbound")
        after = smtp_send(serve.port, make_mail(sender="later@example.com"), "later@example.com")
        result = {**refused, "inbound rows": len(rows), "files in blob_dir": files,
                  "small mail after": after[0],
                  "free bytes": shutil.disk_usage(tiny_blob_dir).free}
        print(figures("blob disk full", result))
        assert refused["SMTP reply"].startswith("452 4.3.1"), result
        assert refused["ingest exit"] == 75, result
        assert not any("Traceback" in line for line in refused["ingest stderr"]), result
        assert len(rows) == 1 and files == [rows[0][0]], result  # no row, no partial blob
        assert after[0] == 250, result
        for path, sha in store.rows("SELECT blob_path, sha256 FROM inbound"):
            assert hashlib.sha256((tiny_blob_dir / path).read_bytes()).hexdigest() == sha
    finally:
        serve.kill()
        store.close()
