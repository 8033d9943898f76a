"""``postdesk doctor`` as ops run it before ``serve``: one line per check, exit 0 on a healthy
desk, 1 as soon as one check fails, with the line that says what to fix. The CLI runs
in-process (click's runner) on a SQLite desk migrated as ``postdesk init`` does (a copy of one
store migrated once per process); the relay, the listening port and the IMAP server are real
sockets on loopback."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from datetime import datetime, timezone

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from postdesk import config
from postdesk.cli import cli
from postdesk.runtime.app import App
from postdesk.store import template_versions
from tests.conftest import write_config
from tests.faults.support import Sink, _migrated_sqlite, free_port

TRUSTED = '[agent_auth]\ntrusted_authserv_id = "mx.desk.test"\n'
AGENT = '[[agents]]\naddress = "alice@acme.example"\n'


def desk(tmp_path, extra: str = "", init: bool = True):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", extra)
    if init:
        shutil.copyfile(_migrated_sqlite(), tmp_path / "postdesk.db")
    return path


def doctor(path, *args: str, env: dict | None = None):
    result = CliRunner().invoke(cli, ["--config", str(path), *(args or ["doctor"])], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def lines(output: str, status: str) -> dict[str, str]:
    """{check name: text} of the lines with ``status``."""
    found = {}
    for line in output.splitlines():
        word, _, rest = line.partition("  ")
        if word.strip() == status:
            name, _, text = rest.strip().partition(": ")
            found.setdefault(name, text)
    return found


def test_a_healthy_desk_passes_every_check(tmp_path, db_url):
    code, out = doctor(write_config(tmp_path, db_url, TRUSTED + AGENT))
    assert code == 0, out
    assert lines(out, "FAIL") == {} and lines(out, "warn") == {}
    assert set(lines(out, "ok")) == {"config", "store", "smtp listen", "outbound", "agent trust",
                                      "templates"}


def test_a_healthy_relay_passes_and_receives_no_mail(tmp_path):
    sink = Sink()
    sink.start()
    try:
        extra = f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\n'
        code, out = doctor(desk(tmp_path, extra))
    finally:
        sink.stop()
    assert code == 0, out
    assert f"relay 127.0.0.1:{sink.port} answers EHLO" in lines(out, "ok")["outbound"]
    assert sink.mails == []


def test_an_unreachable_relay_fails(tmp_path):
    port = free_port()  # nothing listens there
    extra = f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
    code, out = doctor(desk(tmp_path, extra))
    assert code == 1
    assert f"relay 127.0.0.1:{port}" in lines(out, "FAIL")["outbound"]


def test_a_relay_that_refuses_the_login_fails(tmp_path):
    sink = Sink(auth_password="right")
    sink.start()
    try:
        extra = (f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\n'
                 'username = "desk"\npassword_env = "PD_DOCTOR_RELAY"\n')
        code, out = doctor(desk(tmp_path, extra), env={"PD_DOCTOR_RELAY": "wrong"})
    finally:
        sink.stop()
    assert code == 1 and "535" in lines(out, "FAIL")["outbound"]
    assert "wrong" not in out
    code, out = doctor(desk(tmp_path, extra), env={"PD_DOCTOR_RELAY": None})
    assert code == 1 and "password_env" in lines(out, "FAIL")["outbound"]


def test_an_unwritable_maildir_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out = doctor(desk(tmp_path, f'[outbound]\nfolder = "{blocker / "outbound"}"\n'))
    assert code == 1 and "not a writable folder" in lines(out, "FAIL")["outbound"]


def test_a_listen_port_taken_by_another_program_fails(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        path = desk(tmp_path)
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        code, out = doctor(path)
    assert code == 1
    assert "in use by another program" in lines(out, "FAIL")["smtp listen"]


def test_a_listen_port_held_by_a_postdesk_is_a_warning(tmp_path):
    class Quiet:
        async def handle_DATA(self, server, session, envelope):
            return "250 kept"

    port = free_port()
    server = Controller(Quiet(), hostname="127.0.0.1", port=port, ident="postdesk")
    server.start()
    try:
        path = desk(tmp_path)
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        code, out = doctor(path)
    finally:
        server.stop()
    assert code == 0, out
    assert "in use by a postdesk" in lines(out, "warn")["smtp listen"]


def test_a_desk_never_initialised_fails_and_nothing_is_created(tmp_path):
    code, out = doctor(desk(tmp_path, init=False))
    assert code == 1 and "then run `postdesk init`" in lines(out, "FAIL")["store"]
    assert "not checked" in lines(out, "FAIL")["templates"]
    assert not (tmp_path / "postdesk.db").exists()


def test_missing_tables_fail(tmp_path):
    path = desk(tmp_path)
    with sqlite3.connect(tmp_path / "postdesk.db") as db:
        db.execute("DROP TABLE survey")
    code, out = doctor(path)
    assert code == 1 and "lacks the table(s) survey" in lines(out, "FAIL")["store"]


def test_an_older_schema_fails(tmp_path):
    path = desk(tmp_path)
    with sqlite3.connect(tmp_path / "postdesk.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    code, out = doctor(path)
    assert code == 1 and "needs" in lines(out, "FAIL")["store"]


def test_agents_without_a_trusted_server_fail(tmp_path):
    code, out = doctor(desk(tmp_path, AGENT))
    assert code == 1 and "trusted_authserv_id" in lines(out, "FAIL")["agent trust"]


def test_an_override_that_fails_to_render_fails(tmp_path):
    path = desk(tmp_path)
    app = App(config.load(path, environ={}))
    with app.db.session() as session:  # as an older version of postdesk may have accepted it
        template_versions.save(session, "ticket_created", "en", "text", "Hi {{ ticket.nope }}",
                               "ops", "", datetime.now(timezone.utc))
    app.db.dispose()
    code, out = doctor(path)
    assert code == 1
    failed = lines(out, "FAIL")["templates"]
    assert "ticket_created (en)" in failed and "templates edit ticket_created" in failed


def test_an_unreadable_configuration_still_exits_78(tmp_path):
    path = tmp_path / "postdesk.toml"
    path.write_text("[desk\n")
    assert doctor(path)[0] == 78


@pytest.fixture(scope="module")
def dovecot():
    from tests.dovecot import Dovecot

    server = Dovecot().start()  # skips when dovecot-imapd is not installed
    yield server
    server.cleanup()


def imap_box(port: int) -> str:
    return (f'[[imap]]\nname = "shared"\nhost = "127.0.0.1"\nport = {port}\n'
            'security = "none"\nusername = "support"\npassword_env = "PD_DOCTOR_IMAP"\n')


@pytest.mark.timeout(60)
def test_imap_login_passes_and_a_refused_login_fails(tmp_path, dovecot):
    from tests.dovecot import PASSWORD

    path = desk(tmp_path, imap_box(dovecot.port))
    code, out = doctor(path, env={"PD_DOCTOR_IMAP": PASSWORD})
    assert code == 0, out
    assert "logged in as support" in lines(out, "ok")["imap shared"]
    code, out = doctor(path, env={"PD_DOCTOR_IMAP": "wrong-password"})
    assert code == 1 and "login refused" in lines(out, "FAIL")["imap shared"]
    code, out = doctor(path, env={"PD_DOCTOR_IMAP": None})
    assert code == 1 and "PD_DOCTOR_IMAP" in lines(out, "FAIL")["imap shared"]


def test_an_unreachable_store_fails(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postdesk"  # nothing listens
    code, out = doctor(write_config(tmp_path, url))
    assert code == 1 and "cannot open" in lines(out, "FAIL")["store"]


def test_a_deprecated_key_is_a_warning_that_gives_its_new_spelling(tmp_path):
    path = desk(tmp_path, "[lifecycle]\nreopen_days = 7\n")
    code, out = doctor(path)
    assert code == 0, out
    assert lines(out, "warn")["config"] == (
        f'{path}: lifecycle.reopen_days is deprecated: write lifecycle.reopen_within = "7d" '
        'instead (a duration: seconds, or "90s", "15m", "2h", "1d")')
